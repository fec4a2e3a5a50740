"""The serving collector's follow-up step (:class:`~collector.desk.followup.FollowUp`), built
from the ``surveys`` section of collector.yaml.

The secret that keys the callback draw and the survey form's nonces comes from
``surveys.secret`` (or ``secret_file``); when unset, ``<state_dir>/survey.secret`` holds a
random one, created on the first start with mode 0600. Survey links start with
``surveys.public_url``, else ``emergency.public_url``, else the HTTP listener's address.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from collector.cli.config import CollectorConfig
from collector.desk.followup import FollowUp

__all__ = ["SECRET_FILE", "build_followup", "survey_secret"]

SECRET_FILE = "survey.secret"


def survey_secret(config: CollectorConfig) -> bytes:
    """The configured secret, else the one kept in the state directory (created once)."""
    if config.surveys.secret is not None:
        return config.surveys.secret.get_secret_value().encode()
    path = Path(config.state_dir) / SECRET_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text("ascii").strip()
        if len(value) < 32:
            raise OSError(f"{path} holds no usable survey secret; delete it to make a new one") from None
        return value.encode()
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value + "\n")
    return value.encode()


def build_followup(config: CollectorConfig) -> FollowUp:
    """The follow-up step of ``diag-collector serve`` (notifications from the incidents service)."""
    from collector.emergency import service

    base = config.surveys.public_url or config.emergency.public_url or f"http://{config.http.listen}"
    return FollowUp(
        config.surveys,
        secret=survey_secret(config),
        public_url=base,
        notify=config.emergency.notify,
        notifier=service.current_notifier,
    )
