"""Live detection: durable batches → detector → incidents → emergency cases.

Built in the process that commits ingest (see :mod:`collector.observe`).
"""

from __future__ import annotations

from typing import Any

from collector.observe import IngestObserver

__all__ = ["make_observer"]


def make_observer(store: Any, config: Any) -> IngestObserver | None:
    """The observer for ``store`` under ``config`` (None: detection is off)."""
    return None
