"""``*_file`` variants of the collector config's secrets: the value is read from a file.

Every secret setting (``store.url``, a webhook's ``url`` and ``secret``, an SMTP
``password``) can instead be given as ``<name>_file: PATH``; the file holds the value
(one trailing newline is ignored). ``${CREDENTIALS_DIRECTORY}`` in the path is the
directory where systemd puts the unit's credentials (``LoadCredential=``), readable by
the service alone: with ``DynamicUser=yes`` that is the only way to give the service a
secret it can read and no other user can.

Threat model: the YAML then holds no secret and can be world-readable (it must be, for a
dynamic user); a file's content never appears in an error (only its path and the
setting); a path is used as given, so it is the operator's choice, not an input from
the network.

>>> resolve_secret_files({"store": {"url": "sqlite:///x.db"}}, "c.yaml")
{'store': {'url': 'sqlite:///x.db'}}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diagconfig import ConfigError, ConfigIssue

__all__ = ["SECRET_SETTINGS", "resolve_secret_files"]

#: Settings that may come from a file (``<name>_file``). Other ``*_file`` keys (cert_file,
#: windows_file...) are paths the collector opens itself and stay as they are.
SECRET_SETTINGS = frozenset({"url", "secret", "password"})
_CREDENTIALS = "${CREDENTIALS_DIRECTORY}"
_MAX_BYTES = 64 * 1024


def resolve_secret_files(raw: Any, source: str) -> Any:
    """``raw`` with every ``<secret>_file`` replaced by ``<secret>``: the file's content.

    Raises ConfigError naming ``source``, the setting's dotted path and the problem.
    """
    issues: list[ConfigIssue] = []
    resolved = _walk(raw, "", issues)
    if issues:
        raise ConfigError(source, issues)
    return resolved


def _walk(node: Any, path: str, issues: list[ConfigIssue]) -> Any:
    if isinstance(node, list):
        return [_walk(item, f"{path}.{i}" if path else str(i), issues) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[Any, Any] = {}
    for key, value in node.items():
        where = f"{path}.{key}" if path else str(key)
        name = key[: -len("_file")] if isinstance(key, str) and key.endswith("_file") else None
        if name in SECRET_SETTINGS:
            if name in node:
                issues.append(ConfigIssue(where, f"give either {name} or {key}, not both"))
                continue
            secret = _read(value, where, issues)
            if secret is not None:
                out[name] = secret
            continue
        out[key] = _walk(value, where, issues)
    return out


def _read(value: Any, where: str, issues: list[ConfigIssue]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        issues.append(ConfigIssue(where, "expected the path of a file holding the value"))
        return None
    text = value
    if _CREDENTIALS in text:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            issues.append(
                ConfigIssue(
                    where,
                    f"{value} needs $CREDENTIALS_DIRECTORY, which systemd sets only for a unit "
                    "with LoadCredential= (or give a plain path)",
                )
            )
            return None
        text = text.replace(_CREDENTIALS, directory)
    path = Path(text)
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except OSError as exc:
        issues.append(ConfigIssue(where, f"cannot read {path}: {exc.strerror or type(exc).__name__}"))
        return None
    if len(data) > _MAX_BYTES:
        issues.append(ConfigIssue(where, f"{path} is larger than {_MAX_BYTES} bytes; expected one value"))
        return None
    try:
        secret = data.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        issues.append(ConfigIssue(where, f"{path} is not UTF-8 text"))
        return None
    if not secret.strip():
        issues.append(ConfigIssue(where, f"{path} is empty"))
        return None
    return secret
