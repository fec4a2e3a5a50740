"""The ``desk:`` section of the collector config: the SLA sweep.

>>> DeskConfig.model_validate({"sweep_s": 30}).sweep_s
30.0
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DeskConfig"]


class DeskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sla_sweep: bool = True
    """Run the SLA sweep inside ``serve`` (one collector per store is enough; two are safe)."""
    sweep_s: float = Field(default=60.0, ge=1, le=3600)
    """How often the sweep runs: warnings and breaches are raised at most this late."""
    calendars_dir: Path | None = None
    """Customers' calendar files, ``<customer>.yaml`` (``deploy/calendar.example.yaml``);
    they override and extend the calendar of the customer's contract."""
