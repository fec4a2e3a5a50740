"""Reports kept as files beside the store (``reports_dir``), for operators who want them on disk."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["write_report_file"]

log = logging.getLogger(__name__)


def write_report_file(directory: Path | None, customer: str, name: str, content: bytes) -> str | None:
    """Also keep the report as a file under ``directory/customer/`` (None without a directory)."""
    if directory is None:
        return None
    path = directory / customer / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
    except OSError as exc:  # the report is in the store anyway: a full disk only loses the copy
        log.error("cannot write report file %s: %s", path, exc.strerror or type(exc).__name__)
        return None
    return str(path)
