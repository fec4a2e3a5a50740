"""Logging for the command lines: our lines at the chosen level, other libraries' only when they matter.

A first run should show what remote-diag says, not what its libraries say about their
work: fontTools logs every subset step at INFO (about 150 lines per PDF when HarfBuzz's
subsetter is absent), WeasyPrint warns that it fell back to fontTools, Alembic announces
its context. Below ``debug``, a record from a library passes only at WARNING and above,
and from the libraries that narrate normal work (:data:`CHATTY`) only at ERROR. At
``debug`` everything passes, so nothing is hidden from someone chasing a problem.

>>> LEVELS
('debug', 'info', 'warning', 'error')
>>> log_level("WARNING")
'warning'
>>> _ours("collector.grpc"), _ours("diag_agent.scheduler"), _ours("fontTools.subset")
(True, True, False)
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

from diagconfig.terminal import TerminalFormatter

__all__ = ["CHATTY", "LEVELS", "OURS", "QuietLibraries", "configure", "log_level"]

LEVELS = ("debug", "info", "warning", "error")
#: Top-level logger names of remote-diag itself.
OURS = frozenset({"agent", "diag_agent", "checks", "collector", "diagconfig", "protos", "diagctl"})
#: Libraries whose warnings describe their own fallbacks, not a problem of ours: ERROR only.
#: (WeasyPrint's one warning that matters, a missing glyph, is checked by the collector itself
#: and refuses the PDF: collector/reports/glyphs.py.)
CHATTY = frozenset({"fontTools", "weasyprint", "alembic"})
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_level(text: str) -> str:
    """An argparse type: ``--log-level`` in any case, one of :data:`LEVELS`."""
    value = text.strip().lower()
    if value not in LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LEVELS)}, got {text!r}")
    return value


def _ours(name: str) -> bool:
    return name.split(".", 1)[0] in OURS


class QuietLibraries(logging.Filter):
    """Passes our records as they come; other libraries' from WARNING, chatty ones' from ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        top = record.name.split(".", 1)[0]
        if top in OURS or record.name == "root":
            return True
        floor = logging.ERROR if top in CHATTY else logging.WARNING
        return record.levelno >= floor


def configure(level: str, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) at ``level`` (one of :data:`LEVELS`), libraries quiet unless debug.

    As :func:`logging.basicConfig`: when the root logger already has handlers (a host
    program or a test runner configured logging), it is left alone.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    # Agents' and checks' text (host names, summaries, plugin output) reaches log lines:
    # no terminal control sequences.
    handler.setFormatter(TerminalFormatter(FORMAT))
    if level != "debug":
        handler.addFilter(QuietLibraries())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # WeasyPrint's per-step progress lines: not even worth formatting below debug.
    logging.getLogger("weasyprint.progress").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
