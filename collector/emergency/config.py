"""The ``emergency:`` section of the collector config: detection, incidents, cases, windows, notices.

Every part has defaults, so detection runs out of the box; ``detection.enabled: false``
turns the live observer off. Example (``deploy/collector.example.yaml`` has the full one)::

    emergency:
      detection: {silent_after_s: 300}
      cases: {min_severity: CRIT, reopen_window_s: 3600}
      windows:
        - {name: patching, customer: acme, timezone: Europe/Berlin,
           weekly: {days: [sat], at: "22:00", duration: 4h}}
      notify:
        customers:
          acme:
            webhooks: [{url: "https://hooks.acme.example/diag", secret: "at-least-16-chars"}]

>>> cfg = EmergencyConfig.model_validate({"detection": {"detector": {"enter_z": 5}}})
>>> cfg.detection.detector_config().enter_z, cfg.cases.min_severity.value
(5, 'CRIT')
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.detect.baseline import DetectorConfig
from collector.incidents.cases import CasePolicy
from collector.incidents.confirm import ConfirmConfig
from collector.incidents.engine import EngineConfig
from collector.notify.config import NotifyConfig
from collector.schedule.windows import MaintenanceCalendar, Window, windows_with_file

__all__ = ["DetectionConfig", "EmergencyConfig", "maintenance_calendar"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionConfig(_Model):
    """Live detection on the ingest path."""

    enabled: bool = True
    """Run the detector, the incident engine and case opening on every stored batch."""
    detector: dict[str, float | int] = Field(default_factory=dict)
    """Overrides of the detector's tuning (``collector.detect.baseline.DetectorConfig`` fields)."""
    confirm: ConfirmConfig = Field(default_factory=ConfirmConfig)
    """When a CRIT check result is confirmed (soft → hard: ``collector.incidents.confirm``)."""
    crit_score: float = Field(default=0.8, gt=0, le=1)
    """An anomaly scoring at least this is CRIT ..."""
    crit_change: float = Field(default=0.5, gt=0)
    """... and so is one that moved at least this fraction of its baseline (0.5: half again, or
    half gone), or that hit the series' ceiling (SATURATION); other anomalies are WARN. A
    collapse to zero or a pegged CPU is CRIT even on a series too noisy to score high."""
    silent_after_s: float = Field(default=300.0, ge=1)
    """An agent with no stored batch for this long is silent (a few check intervals)."""
    state_save_interval_s: float = Field(default=300.0, ge=1)
    """How often baselines and incidents are saved to the store (and on shutdown); a save costs
    about 30 µs per series on the ingest path (the snapshot); compressing
    and writing it run in the background."""
    roster_refresh_s: float = Field(default=60.0, ge=1)
    """How often the list of agents and host labels is re-read (neighbours, window scopes)."""
    shard: str = Field(default="default", min_length=1, max_length=64)
    """Name of this collector's detection state row (distinct per collector sharing a store)."""

    @field_validator("detector")
    @classmethod
    def _known(cls, value: dict[str, float | int]) -> dict[str, float | int]:
        DetectorConfig.from_dict(dict(value))  # raises ValueError naming unknown or bad settings
        return value

    def detector_config(self) -> DetectorConfig:
        """The detector tuning with the overrides applied."""
        return DetectorConfig.from_dict(dict(self.detector))


class EmergencyConfig(_Model):
    """Detection → incidents → emergency cases → notifications."""

    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """Incident grouping, silence settling, recovery (``collector.incidents.engine``)."""
    cases: CasePolicy = Field(default_factory=CasePolicy)
    """Which incidents open a case, and the reopen window."""
    windows: tuple[Window, ...] = ()
    """Maintenance windows (``collector.schedule.windows``): suppress case opening on covered hosts."""
    windows_file: Path | None = None
    """A YAML file with more windows (``windows: [...]``), read when the collector starts."""
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    """Webhook and e-mail destinations per customer."""
    notify_poll_s: float = Field(default=5.0, gt=0, le=3600)
    """How often the serving process looks for notifications to deliver."""
    public_url: str = ""
    """Base URL of the collector for people (case links in notifications), e.g. https://diag.example.com."""

    @model_validator(mode="after")
    def _unique_windows(self) -> EmergencyConfig:
        MaintenanceCalendar(self.windows)  # raises ValueError on a duplicate name per customer
        return self


def maintenance_calendar(config: EmergencyConfig) -> MaintenanceCalendar:
    """The configured windows plus those of ``windows_file`` (a ConfigError names the file)."""
    return windows_with_file(config.windows, config.windows_file)
