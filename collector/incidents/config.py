"""The incident engine's tuning (:class:`EngineConfig`): windows, settle and quiet times,
outage thresholds and bounds. Read from collector.yaml; every duration in seconds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EngineConfig"]


class EngineConfig(BaseModel):
    """Tuning of the incident engine (all durations in seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(600.0, gt=0, description="Signals whose onsets are this close form one incident.")
    quiet_s: float = Field(
        900.0, ge=0, description="After every signal recovered, the incident resolves this much later."
    )
    related_onset_s: float = Field(
        120.0,
        ge=0,
        description="A signal beginning this close to the last onset of an incident whose signals all "
        "recovered joins it (else only a same-host signal in a chained layer does).",
    )
    change_lookback_s: float = Field(
        1800.0, gt=0, description="A change at most this long before the onset is a candidate cause."
    )
    onset_tolerance_s: float = Field(
        60.0, ge=0, description="Onsets this close count as simultaneous (sampling jitter between series)."
    )
    silent_settle_s: float = Field(
        90.0, ge=0, description="A silent agent waits this long for its neighbours before it is judged."
    )
    outage_min_hosts: int = Field(2, ge=2, description="At least this many silent agents make an outage.")
    outage_fraction: float = Field(
        0.6, gt=0, le=1, description="...and at least this share of the scope's agents."
    )
    retain_resolved_s: float = Field(
        86400.0,
        ge=0,
        description="Resolved incidents are kept this long (longer than the case reopen window).",
    )
    change_retention_s: float = Field(
        7200.0, ge=0, description="Changes are kept this long for late signals."
    )
    max_changes_per_customer: int = Field(
        1000, ge=1, description="Bound on the kept changes of one customer."
    )
    max_timeline: int = Field(
        500, ge=10, description="Bound on timeline entries per incident (oldest dropped)."
    )
