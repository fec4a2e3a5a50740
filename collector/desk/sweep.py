# Full-width Chinese punctuation is intended in the zh-CN wording.
# ruff: noqa: RUF001, RUF002

"""The SLA sweep: compute the clocks of changed cases, raise warnings and breaches exactly once.

One pass (:meth:`SlaSweep.run`):

1. cases whose timeline moved since the last pass (``case_events`` ids above the
   watermark, SLA alerts aside) and clocks marked dirty (a contract changed) are read in
   bulk and their clocks computed from their history (:func:`collector.desk.sla.evaluate`);
   the instants each clock reaches 75% and 100% of its target are stored (``case_sla``);
2. clocks whose stored instant has passed and whose warning or breach was not raised yet
   are marked, and get a ``sla_warning`` / ``sla_breach`` event on the case's timeline, in
   one transaction (so each is raised once, even with two collectors sweeping);
3. breaches are escalated through the notification outbox (webhook and e-mail, event
   ``sla_breach``).

Nothing is recomputed while nothing changes: a quiet pass is two indexed range queries.

Calendars: the contract in force when the case was opened (else the customer's latest)
gives the tier, the targets and the calendar settings; a calendar file
``<calendars_dir>/<customer>.yaml`` overrides and extends them. Maintenance windows pause a
clock while they cover every host of the case (a case without hosts: windows covering
the whole customer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from collector.desk.calendar import BusinessCalendar, CalendarSettings, Interval, load_calendar_file
from collector.desk.sla import (
    TargetMinutes,
    evaluate,
    history_from_events,
    merge_intervals,
    target_seconds,
)
from collector.schedule.windows import HostRef, MaintenanceCalendar
from collector.store.customer_file import ContractRecord, CustomerFileRepo
from collector.store.queries import Scope
from collector.store.sla import Alert, CaseInput, ClockRow, SlaRepo
from diagconfig import ConfigError

__all__ = ["SlaSweep", "SweepReport", "alert_text"]

log = logging.getLogger(__name__)

PAUSE_HORIZON_S = 120 * 86400.0
"""How far past now maintenance occurrences are looked up for a clock's due instant."""

CHUNK = 2000
"""Cases computed and saved per transaction in a long pass (the first one over a store)."""
HOLE_TTL_S = 300.0
"""How long an unseen event id below the watermark is looked for again."""
MAX_NEW_HOLES = 100_000
"""Gaps are tracked only over spans this long (the first pass over an old store skips it)."""

Escalate = Callable[[Alert], None]
"""Called once per breach raised (the notification outbox in ``serve``)."""


@dataclass(frozen=True, slots=True)
class SweepReport:
    recomputed: int
    """Cases whose clocks were computed again."""
    warnings: int
    breaches: int
    seconds: float


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


_TARGET_WORDS = {
    "en": {"first_response": "first response", "restore": "service restore", "resolve": "resolution"},
    "zh-CN": {"first_response": "首次响应", "restore": "恢复服务", "resolve": "解决"},
}


def alert_text(alert: Alert, lang: str = "en") -> str:
    """The timeline text of a warning or breach (English on the timeline; zh-CN for mail).

    >>> a = Alert("C-acme-1", "acme", "t", "first_response", "sla_breach", 0.0, 1800.0, 0.0)
    >>> alert_text(a)
    'SLA breached: first response target of 30m business time passed'
    >>> alert_text(a, "zh-CN")
    'SLA 已超时：首次响应目标（30m 工作时间）已过'
    """
    words = _TARGET_WORDS.get(lang, _TARGET_WORDS["en"])[alert.target]
    span = _duration(alert.target_s)
    if lang == "zh-CN":
        if alert.kind == "sla_breach":
            return f"SLA 已超时：{words}目标（{span} 工作时间）已过"
        return f"SLA 预警：{words}已用去目标（{span} 工作时间）的 75%"
    if alert.kind == "sla_breach":
        return f"SLA breached: {words} target of {span} business time passed"
    return f"SLA at risk: 75% of the {words} target ({span} business time) used"


class SlaSweep:
    """The periodic SLA pass over the store; keeps calendars between passes."""

    def __init__(
        self,
        repo: SlaRepo,
        desk: CustomerFileRepo,
        *,
        windows: MaintenanceCalendar | None = None,
        calendars_dir: Path | None = None,
        escalate: Escalate | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._desk = desk
        self._windows = windows or MaintenanceCalendar()
        self._calendars_dir = calendars_dir
        self._escalate = escalate
        self._clock = clock
        self._calendars: dict[str, BusinessCalendar] = {}
        self._holes: dict[int, float] = {}
        self._terms: dict[
            tuple[str, tuple[int, float] | None, str], tuple[BusinessCalendar, dict[str, TargetMinutes], str]
        ] = {}
        self._file_stamps: dict[str, str] = {}
        self._file_errors: set[str] = set()

    # ------------------------------------------------------------------ the pass

    def run(self, now: float | None = None) -> SweepReport:
        started = time.perf_counter()
        now = self._clock() if now is None else now
        watermark = self._repo.watermark()
        events, top = self._repo.changed_events(watermark, sorted(self._holes))
        wanted = sorted({c for _, c in events if c is not None} | set(self._repo.dirty_cases()))
        self._track_holes(watermark, top, {event_id for event_id, _ in events}, now)
        rows: list[ClockRow] = []
        if wanted:
            self._file_stamps.clear()  # calendar files are looked at once per pass
            contracts = self._contracts()
            for start in range(0, len(wanted), CHUNK):
                if rows:  # a long pass commits as it goes: writers never wait for all of it
                    self._repo.save_clocks(rows, now=now)
                inputs = self._repo.case_inputs(wanted[start : start + CHUNK])
                rows = [row for case in inputs for row in self.clocks(case, contracts, now)]
        warnings, breaches = self._repo.finish_pass(rows, top if top != watermark else None, now, alert_text)
        for alert in breaches:
            if self._escalate is not None:
                try:
                    self._escalate(alert)
                except (OSError, ValueError) as exc:  # the outbox's own trouble: the breach stays on the case
                    log.error("breach of case %s not escalated: %s", alert.case_id, exc)
        return SweepReport(
            recomputed=len(wanted),
            warnings=warnings,
            breaches=len(breaches),
            seconds=time.perf_counter() - started,
        )

    def _track_holes(self, watermark: int, top: int, seen: set[int], now: float) -> None:
        """Remember ids below ``top`` not seen yet: on PostgreSQL a transaction may commit an
        id lower than one already visible (sequences hand ids out before commit). Each is
        looked for again for :data:`HOLE_TTL_S` (then it was rolled back, or an alert)."""
        for event_id in seen:
            self._holes.pop(event_id, None)
        if top - watermark <= MAX_NEW_HOLES:
            for event_id in range(watermark + 1, top + 1):
                if event_id not in seen:
                    self._holes.setdefault(event_id, now)
        for event_id, since in list(self._holes.items()):
            if now - since > HOLE_TTL_S:
                del self._holes[event_id]

    # ------------------------------------------------------------------ one case

    def clocks(
        self, case: CaseInput, contracts: Mapping[str, Sequence[ContractRecord]], now: float
    ) -> list[ClockRow]:
        """The computed clocks of one case under its contract."""
        contract = _contract_for(contracts.get(case.customer, ()), case.opened_at)
        calendar, targets, tier = self.terms(case.customer, contract)
        seconds = target_seconds(targets, tier, case.case_type, calendar)
        history = history_from_events(case.events)
        pauses = self._pauses(case, now)
        rows = []
        for target, target_s in seconds.items():
            status = evaluate(calendar, target, target_s, case.opened_at, history, now, pauses)
            rows.append(
                ClockRow(
                    case_id=case.id,
                    target=target,
                    customer_id=case.customer_id,
                    case_type=case.case_type,
                    target_s=target_s,
                    clock=status.clock,
                    elapsed_s=status.elapsed_s,
                    warn_at=status.warn_at,
                    due_at=status.due_at,
                )
            )
        return rows

    def terms(
        self, customer: str, contract: ContractRecord | None
    ) -> tuple[BusinessCalendar, dict[str, TargetMinutes], str]:
        """The calendar, targets and tier a case of ``customer`` is held to under ``contract``
        (validated once per contract version and calendar file, then cached)."""
        stamp = self._file_stamps.get(customer)
        if stamp is None:
            path = self._calendars_dir / f"{customer}.yaml" if self._calendars_dir is not None else None
            stamp = str(path.stat().st_mtime_ns) if path is not None and path.is_file() else ""
            self._file_stamps[customer] = stamp
        version = (contract.id, contract.updated_at) if contract is not None else None
        key = (customer, version, stamp)
        found = self._terms.get(key)
        if found is None:
            targets = {
                kind: TargetMinutes.model_validate(value)
                for kind, value in (contract.targets if contract is not None else {}).items()
            }
            tier = contract.tier if contract is not None else "standard"
            found = self._terms[key] = (self.calendar(customer, contract), targets, tier)
        return found

    def calendar(self, customer: str, contract: ContractRecord | None) -> BusinessCalendar:
        """The customer's calendar: the contract's settings with the customer's file over them."""
        settings = CalendarSettings.model_validate(contract.calendar if contract is not None else {})
        path = self._calendars_dir / f"{customer}.yaml" if self._calendars_dir is not None else None
        stamp = ""
        if path is not None and path.is_file():
            stamp = str(path.stat().st_mtime_ns)
        key = f"{customer}\x1f{settings.model_dump_json()}\x1f{stamp}"
        found = self._calendars.get(key)
        if found is None:
            if stamp and path is not None:
                try:
                    settings = load_calendar_file(path, settings)
                except ConfigError as exc:  # say so once; the contract's calendar still applies
                    if key not in self._file_errors:
                        self._file_errors.add(key)
                        log.error("calendar file ignored: %s", exc)
            found = self._calendars[key] = BusinessCalendar(settings)
        return found

    def _contracts(self) -> dict[str, list[ContractRecord]]:
        by_customer: dict[str, list[ContractRecord]] = {}
        for contract in self._desk.contracts(Scope.everything()):
            by_customer.setdefault(contract.customer, []).append(contract)
        return by_customer

    def _pauses(self, case: CaseInput, now: float) -> list[Interval]:
        windows = self._windows.for_customer(case.customer)
        if not windows:
            return []
        refs = [HostRef(case.customer, host, case.host_labels.get(host, {})) for host in case.hosts]
        covering = [
            w
            for w in windows
            if (all(w.covers(ref) for ref in refs) if refs else not w.hosts and not w.labels)
        ]
        found: list[Interval] = []
        for window in covering:
            try:
                occurrences = window.occurrences_between(case.opened_at, now + PAUSE_HORIZON_S)
            except ValueError:  # more than the lookup limit: the first ones are enough to go on
                occurrences = window.occurrences_between(case.opened_at, now + 86400.0 * 7)
            found.extend((o.start_ts, o.end_ts) for o in occurrences)
        return merge_intervals(found)


def _contract_for(contracts: Sequence[ContractRecord], opened_at: float) -> ContractRecord | None:
    if not contracts:
        return None
    day = datetime.fromtimestamp(opened_at, UTC).date()
    covering = [c for c in contracts if c.covers(day)]
    chosen = covering or sorted(contracts, key=lambda c: (c.ends_on, c.id))
    return chosen[-1]
