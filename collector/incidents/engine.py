"""The incident engine: groups signals into incidents, ranks their causes, keeps their timeline.

Pure and deterministic: the clock (``clock()`` → Unix seconds) and the id factory
(``new_id()``) are passed in, nothing is read from the environment, and the whole state
is a JSON-able dict (:meth:`IncidentEngine.to_state` / :meth:`IncidentEngine.from_state`)
so it survives a collector restart.

Rules (defaults in :class:`EngineConfig`):

*Grouping.* A problem signal (anomaly, CRIT check, silent agent) joins an open
incident of its customer, chosen in this order: the incident that already holds its
series on that host (a re-fire: flapping stays in one incident); an incident that holds
its host (new signals of a host join its open incident); an incident whose onsets lie
within ``window_s`` of the signal's onset (the nearest). Otherwise it opens a new
incident. Incidents are never merged, so a case never loses its incident.

An incident whose signals have all recovered (``RECOVERING``) takes a new series only
when it is related: on a host of the incident in a layer chained to that host's members
(the same layer, or one above the other: a platform symptom of a storage fault; never
network beside host), or beginning within ``related_onset_s`` of the incident's last
onset. An unrelated signal starts a new incident, so a case about CPU does not quietly
become a case about TCP sockets minutes later.

*Recovery.* A RECOVERY ends its series' membership (a detector ``new_level`` recovery
too: the baseline accepted the new level, noted on the timeline). When every member has
recovered the incident is ``RECOVERING``; ``quiet_s`` later (on a ``feed`` or ``tick``)
it is ``RESOLVED``. A series firing again while ``RECOVERING`` resumes the same
incident. After ``RESOLVED`` a new signal opens a new incident, linked to the previous
incident of that customer sharing a host, so the case layer can apply its reopen rule.

*Silent agents.* An AGENT_SILENT waits ``silent_settle_s`` (agents of one site are
noticed a few seconds apart), then its scope is judged: the customer's hosts with the
same network label (from :meth:`IncidentEngine.set_hosts`), or all its known hosts when
the host has no label. When at least ``outage_min_hosts`` hosts and at least
``outage_fraction`` of the scope are silent with onsets within ``window_s``, all of them
go into one ``SITE_OUTAGE`` incident; otherwise the host's silence joins or opens an
incident like any signal (``AGENT_SILENT`` when only silent agents are in it), with the
number of neighbours still reporting as evidence. A silent agent that reports again
before the settle time never makes an incident.

*Changes.* CHANGE signals are kept for ``change_retention_s``; those at most
``change_lookback_s`` before an incident host's first onset are candidate causes
(arriving before or after the incident opened). A change later than the onset is a
timeline note (a fix, or more trouble), not a candidate.

>>> from collector.incidents.signals import Signal
>>> now = [1000.0]
>>> ids = iter(f"inc-{i}" for i in range(1, 100))
>>> engine = IncidentEngine(clock=lambda: now[0], new_id=lambda: next(ids))
>>> [i.id for i in engine.feed(Signal.check_crit("acme", "db1", "storage.filesystem", "FS_FULL", ts=990.0))]
['inc-1']
>>> engine.get("inc-1").title
'Degradation on db1: probable cause storage on db1'
"""

from __future__ import annotations

import bisect
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from checks.api import Severity
from collector.incidents.causes import Cause, OutageFacts, chained, rank_causes
from collector.incidents.config import EngineConfig
from collector.incidents.model import (
    CaseAction,
    CaseDecision,
    Incident,
    IncidentKind,
    IncidentStatus,
    Member,
    TimelineEntry,
)
from collector.incidents.signals import Signal, SignalKind
from collector.incidents.silence import Alone, Outage, SilentAgents

__all__ = ["STATE_VERSION", "EngineConfig", "IncidentEngine"]

STATE_VERSION = 1


def _uuid_id() -> str:
    return uuid.uuid4().hex


def _cause_identity(cause: Cause | None) -> tuple[Any, ...]:
    if cause is None:
        return ()
    # the reason may sharpen (ONLY → FIRST) without the cause itself changing
    return (cause.kind, cause.host, cause.layer, cause.params.get("change"))


class IncidentEngine:
    """Signals in, incidents out (rules: module docstring).

    :meth:`feed` and :meth:`tick` return the incidents they changed; pass each to
    :func:`~collector.incidents.cases.decide` and report what the case layer did with
    :meth:`record_decision`.
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = _uuid_id,
    ) -> None:
        self.config = config or EngineConfig()
        self._clock = clock
        self._new_id = new_id
        self._incidents: dict[str, Incident] = {}
        self._silent = SilentAgents(self.config)
        self._changes: dict[str, list[Signal]] = {}
        self._changed: dict[str, Incident] = {}

    # --- public surface -------------------------------------------------------------

    def set_hosts(self, customer: str, hosts: Mapping[str, str | None]) -> None:
        """Declare a customer's agents (host → network label or None): the neighbours that
        tell a silent agent from an outage. Hosts seen in signals are added unlabelled."""
        self._silent.set_hosts(customer, hosts)

    def feed(self, signal: Signal) -> list[Incident]:
        """Process one signal; return the incidents it (or the time passing) changed."""
        return self.feed_many((signal,))

    def feed_many(self, signals: Iterable[Signal]) -> list[Incident]:
        """Process signals in order (one batch of ingest); return the incidents changed."""
        self._changed = {}
        now = self._clock()
        for signal in signals:
            self._silent.learn(signal)
            kind = signal.kind
            if kind is SignalKind.CHANGE:
                self._on_change(signal, now)
            elif kind is SignalKind.RECOVERY:
                self._on_recovery(signal, now)
            elif kind is SignalKind.AGENT_SILENT:
                self._on_silent(signal, now)
            else:
                self._on_problem(signal, now)
        self._advance(now)
        return list(self._changed.values())

    def tick(self) -> list[Incident]:
        """Let time pass (settle silent agents, resolve quiet incidents, prune old state)."""
        self._changed = {}
        self._advance(self._clock())
        return list(self._changed.values())

    def get(self, incident_id: str) -> Incident | None:
        """The incident with this id (resolved ones are kept ``retain_resolved_s``)."""
        return self._incidents.get(incident_id)

    def incidents(self, customer: str | None = None, *, open_only: bool = False) -> list[Incident]:
        """Incidents in creation order, optionally of one customer and/or still open."""
        return [
            i
            for i in self._incidents.values()
            if (customer is None or i.customer == customer) and (i.is_open or not open_only)
        ]

    def record_decision(self, decision: CaseDecision, case_id: str | None = None) -> None:
        """Tell the engine what the case layer did with ``decision`` (after doing it).

        OPEN_CASE needs the new ``case_id``; the others use the decision's. Without this
        call the same decision is proposed again (so a crash between acting and
        recording repeats the action: make case opening idempotent on the incident id).
        """
        inc = self._incidents.get(decision.incident_id)
        if inc is None:
            raise ValueError(f"unknown incident {decision.incident_id!r} (resolved and pruned?)")
        now = self._clock()
        action = decision.action
        if action is CaseAction.OPEN_CASE:
            if not case_id:
                raise ValueError(f"OPEN_CASE for incident {inc.id}: pass the new case_id")
            inc.case_id = case_id
            self._note(inc, now, "CASE_OPENED", f"case {case_id} opened")
        elif action is CaseAction.REOPEN_CASE:
            inc.case_id = case_id or decision.case_id
            self._note(
                inc,
                now,
                "CASE_REOPENED",
                f"case {inc.case_id} reopened (previous incident {inc.previous_incident_id})",
            )
        elif action is CaseAction.SUPPRESSED:
            inc.suppressed_by = decision.windows
            inc.suppressed_revision = decision.revision
            self._note(
                inc,
                now,
                "SUPPRESSED_BY_MAINTENANCE",
                f"case suppressed by maintenance window(s) {', '.join(decision.windows)}",
            )
            return
        elif action is CaseAction.NONE:
            return
        inc.case_revision = max(inc.case_revision, decision.revision)

    # --- persistence ----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The whole state as a JSON-able dict (config, clock and ids are not part of it)."""
        return {
            "v": STATE_VERSION,
            "incidents": [i.to_dict() for i in self._incidents.values()],
            "changes": {c: [s.to_dict() for s in sigs] for c, sigs in self._changes.items()},
            **self._silent.to_state(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace this engine's state with one saved by :meth:`to_state`.

        Raises ValueError on another state version or a malformed state (nothing is
        changed then).
        """
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"incident engine state version {state.get('v')!r}, expected {STATE_VERSION}")
        try:
            incidents = {i.id: i for i in (Incident.from_dict(d) for d in state["incidents"])}
            changes = {str(c): [Signal.from_dict(s) for s in sigs] for c, sigs in state["changes"].items()}
            silent = SilentAgents.from_state(state, self.config)
        except (KeyError, TypeError, AttributeError) as exc:  # a hand-edited or truncated file
            raise ValueError(f"malformed incident engine state: {exc!r}") from exc
        self._incidents, self._changes, self._silent = incidents, changes, silent

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = _uuid_id,
    ) -> IncidentEngine:
        """A new engine continuing from ``state`` (see :meth:`load_state`)."""
        engine = cls(config, clock=clock, new_id=new_id)
        engine.load_state(state)
        return engine

    # --- signal handling ------------------------------------------------------------

    def _open_of(self, customer: str) -> list[Incident]:
        return [i for i in self._incidents.values() if i.customer == customer and i.is_open]

    def _target(self, signal: Signal) -> Incident | None:
        candidates = self._open_of(signal.customer)
        key = (signal.host or "", signal.series)
        for inc in candidates:
            if key in inc.members:
                return inc
        # an incident whose signals all recovered takes only a related newcomer
        candidates = [i for i in candidates if i.status is IncidentStatus.OPEN or self._related(i, signal)]
        same_host = [i for i in candidates if signal.host in i.hosts]
        if same_host:
            return max(same_host, key=lambda i: (i.last_onset_ts, i.opened_ts))
        window = self.config.window_s
        best: tuple[float, float, Incident] | None = None
        for inc in candidates:
            onset = signal.onset_ts
            if inc.onset_ts - window <= onset <= inc.last_onset_ts + window:
                distance = max(0.0, inc.onset_ts - onset, onset - inc.last_onset_ts)
                if best is None or (distance, -inc.opened_ts) < best[:2]:
                    best = (distance, -inc.opened_ts, inc)
        return None if best is None else best[2]

    def _related(self, inc: Incident, signal: Signal) -> bool:
        """Whether ``signal`` belongs to ``inc`` although all its signals recovered: it began
        within ``related_onset_s`` of the incident's last onset, or it is on a host of the
        incident in a layer chained to one of that host's members (same layer, or one above
        the other: storage → platform → application, never host beside network)."""
        if abs(signal.onset_ts - inc.last_onset_ts) <= self.config.related_onset_s:
            return True
        layer = signal.layer
        return any(h == signal.host and chained(m.signal.layer, layer) for (h, _), m in inc.members.items())

    def _on_problem(self, signal: Signal, now: float) -> Incident:
        inc = self._target(signal)
        if inc is None:
            return self._new_incident(signal, now)
        self._add_member(inc, signal, now)
        return inc

    def _new_incident(self, signal: Signal, now: float) -> Incident:
        inc = Incident(
            id=self._new_id(),
            customer=signal.customer,
            kind=IncidentKind.DEGRADATION,
            status=IncidentStatus.OPEN,
            opened_ts=now,
            onset_ts=signal.onset_ts,
            last_onset_ts=signal.onset_ts,
            updated_ts=now,
            severity=signal.severity,
        )
        if inc.id in self._incidents:
            raise ValueError(f"new_id() returned the id {inc.id!r} twice")
        self._incidents[inc.id] = inc
        inc.members[(signal.host or "", signal.series)] = self._member(signal)
        inc.kind = self._kind_of(inc)
        self._note(inc, signal.ts, "INCIDENT_OPENED", f"incident opened: {self._describe(signal)}", signal)
        self._link_previous(inc)
        self._attach_changes(inc)
        self._rank(inc)
        self._changed[inc.id] = inc
        return inc

    @staticmethod
    def _member(signal: Signal) -> Member:
        return Member(
            signal=signal,
            first_onset_ts=signal.onset_ts,
            peak_score=signal.score,
            peak_severity=signal.severity,
        )

    @staticmethod
    def _describe(signal: Signal) -> str:
        return f"{signal.host}: {signal.summary or signal.series + ' ' + signal.key}"

    def _add_member(self, inc: Incident, signal: Signal, now: float) -> None:
        key = (signal.host or "", signal.series)
        member = inc.members.get(key)
        material = False
        if member is None:
            new_host = signal.host not in inc.hosts
            inc.members[key] = self._member(signal)
            self._note(inc, signal.ts, "SIGNAL_JOINED", self._describe(signal), signal)
            material = True
            inc.onset_ts = min(inc.onset_ts, signal.onset_ts)
            inc.last_onset_ts = max(inc.last_onset_ts, signal.onset_ts)
            if new_host:
                self._link_previous(inc)
            self._attach_changes(inc)
        else:
            if not member.active:
                member.active = True
                member.fired += 1
                member.recovered_ts = None
                self._note(
                    inc,
                    signal.ts,
                    "SIGNAL_REFIRED",
                    f"{self._describe(signal)} (fired {member.fired} times)",
                    signal,
                )
            member.signal = signal
            member.peak_score = max(member.peak_score, signal.score)
            member.peak_severity = Severity.worst(member.peak_severity, signal.severity)
        worst = Severity.worst(inc.severity, signal.severity)
        if worst is not inc.severity:
            inc.severity = worst
            self._note(inc, signal.ts, "SEVERITY_RAISED", f"severity raised to {worst.value}", signal)
            material = True
        if inc.status is IncidentStatus.RECOVERING:
            inc.status = IncidentStatus.OPEN
            inc.recovered_ts = None
            self._note(inc, signal.ts, "INCIDENT_RESUMED", "a recovered signal fired again", signal)
        kind = self._kind_of(inc)
        if kind is not inc.kind:
            self._note(inc, signal.ts, "KIND_CHANGED", f"incident is now {kind.value}")
            inc.kind = kind
            material = True
        material = self._rank(inc, signal.ts) or material
        self._touch(inc, now, material)

    def _kind_of(self, inc: Incident) -> IncidentKind:
        if inc.outage is not None:
            return IncidentKind.SITE_OUTAGE
        if all(m.signal.kind is SignalKind.AGENT_SILENT for m in inc.members.values()):
            return IncidentKind.AGENT_SILENT
        return IncidentKind.DEGRADATION

    def _on_recovery(self, signal: Signal, now: float) -> None:
        if self._silent.back(signal):
            return  # back before it was judged: never an incident
        key = (signal.host or "", signal.series)
        for inc in self._open_of(signal.customer):
            member = inc.members.get(key)
            if member is None or not member.active:
                continue
            member.active = False
            member.recovered_ts = signal.ts
            reason = str(signal.evidence.get("reason", "back"))
            member.recovery_reason = reason
            if reason == "new_level":
                self._note(
                    inc, signal.ts, "SIGNAL_NEW_LEVEL",
                    f"{signal.host}: {signal.series} stayed off its baseline; accepted as its new level",
                    signal,
                )  # fmt: skip
            else:
                self._note(
                    inc, signal.ts, "SIGNAL_RECOVERED", f"{signal.host}: {signal.series} recovered", signal
                )
            if not inc.active_members:
                inc.status = IncidentStatus.RECOVERING
                inc.recovered_ts = max(m.recovered_ts or signal.ts for m in inc.members.values())
                self._note(
                    inc, signal.ts, "ALL_RECOVERED", "every signal recovered; waiting for the quiet period"
                )
            self._touch(inc, now, False)

    def _on_change(self, signal: Signal, now: float) -> None:
        kept = self._changes.setdefault(signal.customer, [])
        if signal in kept:
            return
        kept.append(signal)
        del kept[: -self.config.max_changes_per_customer]
        for inc in self._open_of(signal.customer):
            if signal.host is not None and signal.host not in inc.hosts:
                continue
            onset = self._host_onset(inc, signal.host)
            if signal.ts > onset + self.config.onset_tolerance_s:
                self._note(
                    inc,
                    signal.ts,
                    "CHANGE_DURING_INCIDENT",
                    f"{signal.host or inc.customer}: {signal.summary}",
                    signal,
                )
                self._touch(inc, now, False)
            elif self._attach_changes(inc):
                self._touch(inc, now, self._rank(inc, signal.ts))

    @staticmethod
    def _host_onset(inc: Incident, host: str | None) -> float:
        if host is None:
            return inc.onset_ts
        return min((m.first_onset_ts for (h, _), m in inc.members.items() if h == host), default=inc.onset_ts)

    def _attach_changes(self, inc: Incident) -> bool:
        """Collect the candidate changes of ``inc`` from the kept ones; True if any was new."""
        cfg = self.config
        hosts = set(inc.hosts)
        added = False
        for change in self._changes.get(inc.customer, ()):
            if change in inc.changes or (change.host is not None and change.host not in hosts):
                continue
            before = self._host_onset(inc, change.host) - change.ts
            if -cfg.onset_tolerance_s <= before <= cfg.change_lookback_s:
                inc.changes.append(change)
                self._note(
                    inc,
                    change.ts,
                    "CHANGE_BEFORE_ONSET",
                    f"{change.host or inc.customer}: {change.summary}",
                    change,
                )
                added = True
        inc.changes.sort(key=lambda c: (c.ts, c.host or "", c.series))
        return added

    def _rank(self, inc: Incident, ts: float | None = None) -> bool:
        """Re-rank the causes of ``inc``; True when the top cause changed."""
        before = _cause_identity(inc.top_cause)
        inc.causes = rank_causes(
            inc.member_signals(),
            inc.changes,
            outage=inc.outage,
            lookback_s=self.config.change_lookback_s,
            tolerance_s=self.config.onset_tolerance_s,
        )
        after = _cause_identity(inc.top_cause)
        if before and after != before and inc.top_cause is not None:
            self._note(
                inc,
                inc.updated_ts if ts is None else ts,
                "TOP_CAUSE_CHANGED",
                f"probable cause now: {inc.top_cause.label}",
            )
            return True
        return False

    # --- silent agents --------------------------------------------------------------

    def _on_silent(self, signal: Signal, now: float) -> None:
        if any(signal.host in inc.silent_hosts() for inc in self._open_of(signal.customer)):
            return  # already known silent
        self._silent.wait(signal, now)

    def _settle(self, now: float) -> None:
        for verdict in self._silent.judge(now, self._open_of):
            if isinstance(verdict, Alone):
                self._on_problem(verdict.signal, now)
            else:
                self._outage(verdict, now)

    def _outage(self, verdict: Outage, now: float) -> None:
        customer, network, signals = verdict.customer, verdict.network, list(verdict.signals)
        silent, total = verdict.silent, verdict.total
        target = next(
            (i for i in self._open_of(customer) if i.outage is not None and i.outage.network == network),
            None,
        ) or self._target(signals[0])
        if target is None:
            target = self._new_incident(signals[0], now)
            signals = signals[1:]
        for s in signals:
            self._add_member(target, s, now)
        previous = target.outage
        count = max(len(silent), previous.silent if previous else 0)
        target.outage = OutageFacts(count, total, network)
        if previous is None:
            self._note(
                target,
                now,
                "SITE_OUTAGE",
                f"{count} of {total} agents silent together: site or network outage",
            )
        if previous is None or previous.silent != count:
            target.kind = IncidentKind.SITE_OUTAGE
            self._rank(target, now)
            self._touch(target, now, True)

    # --- time -----------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        cfg = self.config
        self._settle(now)
        for inc in list(self._incidents.values()):
            if inc.status is IncidentStatus.RECOVERING and inc.recovered_ts is not None:
                if now >= inc.recovered_ts + cfg.quiet_s:
                    inc.status = IncidentStatus.RESOLVED
                    inc.resolved_ts = now
                    self._note(inc, now, "INCIDENT_RESOLVED", "quiet period over: incident resolved")
                    self._touch(inc, now, True)
            elif (
                inc.status is IncidentStatus.RESOLVED
                and inc.resolved_ts is not None
                and now > inc.resolved_ts + cfg.retain_resolved_s
                and inc.id not in self._changed
            ):
                del self._incidents[inc.id]
        horizon = now - cfg.change_retention_s
        for customer, kept in list(self._changes.items()):
            kept[:] = [c for c in kept if c.ts >= horizon]
            if not kept:
                del self._changes[customer]

    # --- bookkeeping ----------------------------------------------------------------

    def _link_previous(self, inc: Incident) -> None:
        """Link ``inc`` to the latest resolved incident with a case sharing a host (reopen rule)."""
        if inc.case_id is not None:
            return
        hosts = set(inc.hosts)
        best: Incident | None = None
        for other in self._incidents.values():
            if other is inc or other.customer != inc.customer or other.case_id is None:
                continue
            if other.status is not IncidentStatus.RESOLVED or other.resolved_ts is None:
                continue
            if not hosts & set(other.hosts):
                continue
            if best is None or (other.resolved_ts, other.opened_ts) > (
                best.resolved_ts or 0.0,
                best.opened_ts,
            ):
                best = other
        if best is not None and (
            inc.previous_resolved_ts is None or (best.resolved_ts or 0.0) > inc.previous_resolved_ts
        ):
            inc.previous_incident_id = best.id
            inc.previous_case_id = best.case_id
            inc.previous_resolved_ts = best.resolved_ts

    def _note(self, inc: Incident, ts: float, key: str, text: str, signal: Signal | None = None) -> None:
        entry = TimelineEntry(
            ts, key, text, None if signal is None else signal.host, None if signal is None else signal.series
        )
        timeline = inc.timeline
        bisect.insort(timeline, entry, key=lambda e: e.ts)  # signals may arrive late
        overflow = len(timeline) - self.config.max_timeline
        if overflow > 0:
            # keep the opening entries (how it began) and the latest ones
            keep_head = 10
            del timeline[keep_head : keep_head + overflow]
            inc.timeline_dropped += overflow

    def _touch(self, inc: Incident, now: float, material: bool) -> None:
        inc.updated_ts = max(inc.updated_ts, now)
        if material:
            inc.revision += 1
        self._changed[inc.id] = inc
