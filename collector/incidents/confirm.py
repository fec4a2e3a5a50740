"""Soft and hard states for check results: one CRIT result is not yet a problem.

A check result that says CRIT once among OKs (a plugin that timed out once, a CPU busy
for one 2-second sample while the machine was briefly loaded) must not open an
emergency case. Nagios calls such a state *soft* and pages only once it is *hard*:
after ``max_check_attempts`` consecutive non-OK results. Icinga and Checkmk do the same.
:class:`CheckConfirmer` applies that discipline per check series (``check:<check>[<item>]``):

- a CRIT series is *soft* from its first CRIT result; any result of that check in which
  the series is not CRIT (OK, WARN, UNKNOWN, or another item CRIT instead) ends the
  streak and forgets it;
- it becomes *hard* (confirmed, a ``CHECK_CRIT`` signal whose onset is the first CRIT
  result) after ``attempts`` consecutive CRIT results, or earlier once at least two CRIT
  results span ``min_duration_s`` (checks run every few minutes should not need a
  quarter of an hour);
- a result whose key is *conclusive* (``immediate_keys``: the OOM killer struck, a
  filesystem was remounted read-only) is hard at once: the event has already happened,
  and the check says it only once.

Defaults: 3 attempts (Nagios' sample templates), 120 s, conclusive ``OOM_KILLS`` and
``FS_REMOUNTED_RO``; ``checks`` overrides them per check name. With 3 attempts the case
opens two check intervals after the onset, the promise kept for sustained problems.

Threat model: the keys, series and timestamps come from agents (hostile bytes); the
confirmer only counts and compares them, keeps at most one entry per CRIT series of a
host (bounded by what ingest accepts) and never raises on odd values.

>>> c = CheckConfirmer(ConfirmConfig())
>>> host = ("acme", "web1")
>>> c.update(host, "application.nagios", {"check:application.nagios[db]": "PLUGIN_CRITICAL"}, ts=0.0)
[]
>>> c.update(host, "application.nagios", {}, ts=2.0)  # an OK: the streak is over
[]
>>> [c.update(host, "application.nagios", {"check:application.nagios[db]": "PLUGIN_CRITICAL"}, ts=t)
...  for t in (4.0, 6.0, 8.0)][-1][0]
Confirmed(series='check:application.nagios[db]', onset_ts=4.0, results=3, reason='3 consecutive CRIT results')
>>> c.update(host, "host.oom_kills", {"check:host.oom_kills": "OOM_KILLS"}, ts=9.0)[0].reason
'conclusive key OOM_KILLS'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CheckConfirmer", "ConfirmConfig", "ConfirmRule", "Confirmed"]

CONCLUSIVE_KEYS = ("OOM_KILLS", "FS_REMOUNTED_RO")
"""Keys whose single CRIT result already states a fact (``host.oom_kills``, ``storage.readonly``)."""


class ConfirmRule(BaseModel):
    """How one check's CRIT state is confirmed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(
        3, ge=1, le=100, description="Consecutive CRIT results that make it hard (1: at once)."
    )
    min_duration_s: float = Field(
        120.0, ge=0, description="...or at least two CRIT results spanning this many seconds."
    )


class ConfirmConfig(ConfirmRule):
    """``emergency.detection.confirm``: the default rule, conclusive keys, per-check rules.

    >>> cfg = ConfirmConfig.model_validate({"checks": {"host.cpu": {"attempts": 5}}})
    >>> cfg.rule_for("host.cpu").attempts, cfg.rule_for("host.load").attempts
    (5, 3)
    """

    immediate_keys: tuple[str, ...] = Field(
        CONCLUSIVE_KEYS, description="Result keys confirmed by a single CRIT result."
    )
    checks: dict[str, ConfirmRule] = Field(
        default_factory=dict, description="Rules per check name (``host.cpu``, ``application.nagios``)."
    )

    def rule_for(self, check: str) -> ConfirmRule:
        """The rule of ``check``: its own entry, else the defaults."""
        return self.checks.get(check, self)


@dataclass(frozen=True, slots=True)
class Confirmed:
    """A CRIT series that has just become hard."""

    series: str
    onset_ts: float
    """The first CRIT result of the streak: when the trouble began."""
    results: int
    """How many consecutive CRIT results confirmed it."""
    reason: str


@dataclass(slots=True)
class _Soft:
    first_ts: float
    count: int


class CheckConfirmer:
    """Soft CRIT streaks per (customer, host) → check → series (rules: module docstring)."""

    def __init__(self, config: ConfirmConfig | None = None) -> None:
        self.config = config or ConfirmConfig()
        self._soft: dict[tuple[str, str], dict[str, dict[str, _Soft]]] = {}

    def pending(self, host: tuple[str, str], check: str) -> bool:
        """True while ``check`` on ``host`` has a soft CRIT series (its next OK must be seen)."""
        return check in self._soft.get(host, {})

    def update(
        self, host: tuple[str, str], check: str, crit: Mapping[str, str], *, ts: float
    ) -> list[Confirmed]:
        """One result of ``check``: ``crit`` maps each of its series that is CRIT and not yet
        hard to its key. Returns the series confirmed by this result (they leave the soft
        state: the caller keeps them as hard until the check stops saying CRIT)."""
        checks = self._soft.get(host)
        soft = None if checks is None else checks.get(check)
        if not crit:
            if soft is not None and checks is not None:
                del checks[check]  # the streak is broken
                if not checks:
                    del self._soft[host]
            return []
        rule = self.config.rule_for(check)
        kept: dict[str, _Soft] = {}
        confirmed: list[Confirmed] = []
        for series, key in crit.items():
            streak = None if soft is None else soft.get(series)
            if streak is None or not ts >= streak.first_ts:  # a new streak (or a clock gone backwards)
                streak = _Soft(ts, 0)
            streak.count += 1
            span = ts - streak.first_ts
            if key in self.config.immediate_keys:
                reason = f"conclusive key {key}"
            elif streak.count >= rule.attempts:
                reason = f"{streak.count} consecutive CRIT results"
            elif streak.count >= 2 and span >= rule.min_duration_s:
                reason = f"CRIT for {span:.0f} s ({streak.count} results)"
            else:
                kept[series] = streak
                continue
            confirmed.append(Confirmed(series, streak.first_ts, streak.count, reason))
        if kept:
            self._soft.setdefault(host, {})[check] = kept
        elif checks is not None and check in checks:
            del checks[check]
            if not checks:
                del self._soft[host]
        return confirmed

    def __len__(self) -> int:
        """The number of soft series held."""
        return sum(len(s) for checks in self._soft.values() for s in checks.values())

    # --- persistence -----------------------------------------------------------------

    def to_state(self) -> list[list[Any]]:
        """JSON-able soft streaks: ``[customer, host, check, series, first_ts, count]``."""
        return [
            [c, h, check, series, s.first_ts, s.count]
            for (c, h), checks in self._soft.items()
            for check, soft in checks.items()
            for series, s in soft.items()
        ]

    def load_state(self, rows: Sequence[Sequence[Any]]) -> None:
        """Replace the streaks with those of :meth:`to_state` (ValueError on a malformed row)."""
        soft: dict[tuple[str, str], dict[str, dict[str, _Soft]]] = {}
        for row in rows:
            if len(row) != 6:
                raise ValueError(f"soft check state row {row!r}: expected 6 fields")
            c, h, check, series, first_ts, count = row
            first, n = float(first_ts), int(count)
            if not math.isfinite(first) or n < 1:
                raise ValueError(f"soft check state row {row!r}: bad onset or count")
            soft.setdefault((str(c), str(h)), {}).setdefault(str(check), {})[str(series)] = _Soft(first, n)
        self._soft = soft
