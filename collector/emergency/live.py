"""Live detection: durable batches → detector → incidents → emergency cases.

Built in the process that commits ingest (see :mod:`collector.store.observe`) by
:func:`make_observer`. :class:`LiveDetection` turns each stored batch into signals and
feeds the incident engine; the engine's changed incidents go through
:func:`collector.incidents.decide`, and the decision is carried out on the store's cases
(:class:`collector.store.cases.CaseRepo`) and the notification outbox.

Per stored batch (cost: one dict lookup and one detector update per point; the database
is touched only when an incident changes or a host is seen for the first time):

- every metric point → its series' :class:`~collector.detect.detector.SeriesDetector`
  (direction from the metric catalogue); an anomaly or recovery → a signal;
- an anomaly is CRIT when it scores ``crit_score`` or moved ``crit_change`` of its baseline or
  saturated, else WARN;
- a CRIT result → ``CHECK_CRIT`` per CRIT finding item once confirmed (soft → hard, see
  :mod:`collector.incidents.confirm`: several consecutive CRIT results, or one conclusive
  result such as an OOM kill), and its end → a recovery;
- a product version change in the inventory → a ``PRODUCT_VERSION`` change, another
  changed inventory section → an ``INVENTORY`` change; a ``UNIT_RESTARTED`` finding or a
  drop of ``platform_unit_uptime_seconds`` → a ``SERVICE_RESTARTED`` change;
- a batch from an agent marked silent → its recovery.

On :meth:`LiveDetection.tick` (about once a second): agents without a stored batch for
``emergency.detection.silent_after_s`` → ``AGENT_SILENT`` (the engine tells a lone silent
agent from a site outage by its neighbours: the customer's other agents, or those with
the same ``network`` host label); the engine's time-based rules; pending case decisions
retried (a database error never loses one); the state saved every
``state_save_interval_s`` and on close, so baselines and incidents survive a restart.

Case rules: see :mod:`collector.incidents.cases`. Maintenance windows come from
``emergency.windows`` and ``emergency.windows_file``; a suppressed incident is kept in the
``incidents`` table with the suppression on its timeline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from checks.api import Direction, Layer, Severity
from collector.detect.detector import Anomaly, DetectorBank, Event, SeriesDetector
from collector.emergency.case_content import case_content
from collector.emergency.config import EmergencyConfig, maintenance_calendar
from collector.incidents import (
    CaseAction,
    CaseDecision,
    Change,
    ChangeKind,
    Incident,
    IncidentEngine,
    IncidentStatus,
    Signal,
    ceiling_from,
    check_series,
    decide,
    layer_from,
)
from collector.incidents.confirm import CheckConfirmer
from collector.schedule.windows import MaintenanceCalendar
from collector.store.cases import CaseRepo
from collector.store.errors import DatabaseError
from collector.store.fleet import FleetRepo
from collector.store.inventory import extract_products, product_changes
from collector.store.observe import Committed, IngestObserver

if TYPE_CHECKING:
    from collector.notify import EventKind, Notifier
    from collector.store import Store

__all__ = ["LiveDetection", "make_observer", "series_key"]

log = logging.getLogger("collector.emergency.live")

STATE_VERSION = 1
UPTIME_METRIC = "platform_unit_uptime_seconds"
RESTART_KEY = "UNIT_RESTARTED"
_SILENT_HORIZON_S = 86_400.0
"""Agents last seen longer ago than this when the collector starts are not watched for silence."""


def series_key(name: str, labels: Sequence[tuple[str, str]]) -> str:
    """The series name of a metric on its host: the metric name, then its labels.

    >>> series_key("storage_disk_await_seconds", (("device", "sdb"),))
    'storage_disk_await_seconds{device=sdb}'
    >>> series_key("host_load1", ())
    'host_load1'
    """
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"


class _Series:
    """What the observer keeps per (host, series): its detector and how to describe it."""

    __slots__ = ("check", "detector", "labels", "last", "layer", "name", "series", "uptime")

    def __init__(
        self,
        detector: SeriesDetector,
        series: str,
        check: str,
        name: str,
        labels: dict[str, str],
        layer: Layer,
    ) -> None:
        self.detector = detector
        self.series = series
        self.check = check
        self.name = name
        self.labels = labels
        self.layer = layer
        self.uptime = name == UPTIME_METRIC
        self.last: float | None = None


def _sections(document: Mapping[str, Any]) -> dict[str, str]:
    """A digest per top-level inventory section other than ``products``."""
    return {
        str(k): hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:16]
        for k, v in document.items()
        if k != "products"
    }


class LiveDetection:
    """The live observer (see the module docstring). ``clock`` is injectable for tests."""

    def __init__(
        self,
        store: Store,
        config: EmergencyConfig,
        *,
        calendar: MaintenanceCalendar | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._store = store
        self.config = config
        self.repo = CaseRepo(store)
        self._saver: ThreadPoolExecutor | None = None  # writes saved state off the ingest path
        self._clock = clock
        self._now = clock()
        self._started = self._now
        det = config.detection
        self._shard = det.shard
        self._crit_score = det.crit_score
        self._crit_change = det.crit_change
        self._silent_after = det.silent_after_s
        self.bank = DetectorBank(config=det.detector_config())
        engine_kwargs: dict[str, Any] = {"clock": lambda: self._now}
        if new_id is not None:
            engine_kwargs["new_id"] = new_id
        self.engine = IncidentEngine(config.engine, **engine_kwargs)
        self.calendar = calendar if calendar is not None else MaintenanceCalendar(config.windows)
        self.notifier = notifier
        self._decl: tuple[dict[str, Direction], dict[str, Layer]] | None = None
        self._series: dict[int, dict[tuple[str, str, str, tuple[tuple[str, str], ...]], _Series]] = {}
        self._last_seen: dict[tuple[str, str], float] = {}
        self._silent: set[tuple[str, str]] = set()
        self._crit: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        """(customer, host) → check → confirmed (hard) CRIT series → onset."""
        self._confirm = CheckConfirmer(det.confirm)
        """Soft CRIT series: CRIT results not yet confirmed."""
        self._products: dict[tuple[str, str], dict[str, str]] = {}
        self._inv_sections: dict[tuple[str, str], dict[str, str]] = {}
        self._labels: dict[tuple[str, str], dict[str, str]] = {}
        # observe() runs on ingest threads and tick() on another when ingest is in-process
        self._lock = threading.Lock()
        self._next_save = self._now + det.state_save_interval_s
        self._next_roster = self._now
        self._load_state()
        self._refresh_roster(initial=True)

    # ------------------------------------------------------------------ IngestObserver

    def observe(self, committed: Sequence[Committed]) -> None:
        """Turn stored batches into signals and act on the incidents they change."""
        with self._lock:
            self._now = now = self._clock()
            signals: list[Signal] = []
            for c in committed:
                customer, host = c.agent.customer, c.agent.host
                hk = (customer, host)
                if hk in self._silent:
                    self._silent.discard(hk)
                    signals.append(Signal.agent_back(customer, host, ts=now))
                self._last_seen[hk] = now
                after = c.stored_before
                try:
                    self._points(c, customer, host, after, signals)
                    for r in c.batch.results:
                        if r.seq > after:
                            self._result(customer, host, r, signals)
                    for inv in c.batch.inventories:
                        if inv.seq > after:
                            self._inventory(c.host_id, customer, host, inv.seq, inv.ts, inv.document, signals)
                except (ValueError, TypeError, KeyError) as exc:  # one odd batch must not stop the others
                    log.warning("detection skipped part of a batch of %s/%s: %s", customer, host, exc)
            if signals:
                self._act(self.engine.feed_many(signals))

    def tick(self, now: float) -> None:
        """Silent agents, the engine's time rules, retried decisions, periodic saves."""
        with self._lock:
            self._now = now
            det = self.config.detection
            if now >= self._next_roster:
                self._next_roster = now + det.roster_refresh_s
                self._refresh_roster(initial=False)
            signals = []
            for hk, seen in self._last_seen.items():
                if hk not in self._silent and now - seen >= self._silent_after:
                    self._silent.add(hk)
                    signals.append(Signal.agent_silent(hk[0], hk[1], last_seen_ts=seen, ts=now))
            changed = self.engine.feed_many(signals) if signals else self.engine.tick()
            self._act(changed)
            self._act(self._pending_decisions(exclude={i.id for i in changed}), only_acted=True)
            if now >= self._next_save:
                self._next_save = now + det.state_save_interval_s
                self.save_state()

    def close(self) -> None:
        """Save the state; stop the notifier."""
        try:
            with self._lock:
                self.save_state(wait=True)
        finally:
            if self._saver is not None:
                self._saver.shutdown(wait=True)
                self._saver = None
            if self.notifier is not None:
                self.notifier.close()

    # ------------------------------------------------------------------ batch → signals

    def _declared(self) -> tuple[dict[str, Direction], dict[str, Layer]]:
        """Each metric's direction and each check's layer (a point's layer), as declared."""
        if self._decl is None:
            from checks.registry import all_checks, catalogue  # imports every check: once

            directions = {name: spec.direction for name, spec in catalogue().items()}
            self._decl = directions, {name: check.layer for name, check in all_checks().items()}
        return self._decl

    def _new_series(
        self, host_id: int, customer: str, host: str, ref: tuple[str, str, str, tuple[tuple[str, str], ...]]
    ) -> _Series:
        check, name, unit, labels = ref
        series = series_key(name, labels)
        key = f"{customer}/{host}/{series}"
        detector = self.bank.detectors.get(key)
        if detector is None:
            direction = self._declared()[0].get(name, Direction.BOTH_BAD)
            detector = SeriesDetector(key, direction, self.bank.config, ceiling=ceiling_from(unit, name))
            self.bank.detectors[key] = detector
        layer = layer_from(self._declared()[1].get(check), check, name) or Layer.APPLICATION
        entry = _Series(detector, series, check, name, dict(labels), layer)
        self._series.setdefault(host_id, {})[ref] = entry
        return entry

    def _points(self, c: Committed, customer: str, host: str, after: int, signals: list[Signal]) -> None:
        batch: Any = c.batch
        refs = getattr(batch, "point_refs", None)
        if refs is not None:  # columnar (collector.store.store.ColumnarBatch)
            values: list[float] = batch.point_values
            spans: list[tuple[int, float, int]] = batch.point_spans
        else:
            refs, values, spans = [], [], []
            for p in batch.points:
                refs.append((p.check, p.name, p.unit, p.labels))
                values.append(p.value)
                spans.append((p.seq, p.ts, len(refs)))
        if not refs:
            return
        cache = self._series.get(c.host_id)
        if cache is None:
            cache = self._series[c.host_id] = {}
        events: list[tuple[_Series, Event]] = []
        start = 0
        for seq, ts, end in spans:
            if seq > after:
                for i in range(start, end):
                    ref = refs[i]
                    entry = cache.get(ref)
                    if entry is None:
                        entry = self._new_series(c.host_id, customer, host, ref)
                    value = values[i]
                    event = entry.detector.update(ts, value)
                    if event is not None:
                        events.append((entry, event))
                    if entry.uptime:
                        self._uptime(entry, customer, host, ts, value, signals)
            start = end
        for entry, event in events:
            signal = Signal.from_detector(
                replace(event, series=entry.series),
                customer=customer,
                host=host,
                check=entry.check,
                layer=entry.layer,
                crit_score=self._crit_score,
            )
            if signal.severity is Severity.WARN and isinstance(event, Anomaly) and self._sharp(event):
                signal = replace(signal, severity=Severity.CRIT)
            signals.append(signal.with_evidence(metric=entry.name, labels=entry.labels))

    def _sharp(self, a: Anomaly) -> bool:
        """A large move (relative to the baseline) or saturation: CRIT whatever the score."""
        if a.key == "SATURATION":
            return True
        return abs(a.observed - a.expected) >= self._crit_change * abs(a.expected) > 0

    def _uptime(
        self, entry: _Series, customer: str, host: str, ts: float, value: float, signals: list[Signal]
    ) -> None:
        last, entry.last = entry.last, value
        if last is not None and value + 1.0 < last:  # the unit's main process started again
            unit = entry.labels.get("unit", entry.series)
            signals.append(Signal.changed(customer, host, Change(ChangeKind.SERVICE_RESTARTED, unit), ts=ts))

    def _result(self, customer: str, host: str, r: Any, signals: list[Signal]) -> None:
        hk = (customer, host)
        open_for_check = self._crit.get(hk, {}).get(r.check)
        if r.severity == "OK" and not open_for_check and not self._confirm.pending(hk, r.check):
            return  # the common case: nothing to parse
        findings: list[dict[str, Any]] = []
        if r.findings_json not in ("", "[]"):
            try:
                parsed = json.loads(r.findings_json)
                findings = [f for f in parsed if isinstance(f, dict)] if isinstance(parsed, list) else []
            except ValueError:
                findings = []
        for f in findings:
            if f.get("key") == RESTART_KEY:
                unit = str(f.get("item") or r.check)
                signals.append(
                    Signal.changed(customer, host, Change(ChangeKind.SERVICE_RESTARTED, unit), ts=r.ts)
                )
        crit_now: dict[str, tuple[str | None, str, str]] = {}
        if r.severity == "CRIT":
            crit_findings = [f for f in findings if f.get("severity") == "CRIT"]
            if crit_findings:
                for f in crit_findings:
                    item = str(f["item"]) if f.get("item") else None
                    crit_now[check_series(r.check, item)] = (
                        item,
                        str(f.get("key") or r.key),
                        str(f.get("summary") or ""),
                    )
            else:
                crit_now[check_series(r.check)] = (None, r.key, r.summary)
        known = self._crit.setdefault(hk, {}).setdefault(r.check, {})
        # a CRIT series is soft until confirmed over several results (or conclusive at once)
        soft = {series: key for series, (_item, key, _summary) in crit_now.items() if series not in known}
        for confirmed in self._confirm.update(hk, r.check, soft, ts=r.ts):
            series = confirmed.series
            item, key, summary = crit_now[series]
            known[series] = confirmed.onset_ts
            signals.append(
                Signal.check_crit(
                    customer,
                    host,
                    r.check,
                    key,
                    ts=r.ts,
                    onset_ts=confirmed.onset_ts,
                    item=item,
                    summary=f"{r.check} CRIT: {summary or key}",
                    evidence={
                        "key": key,
                        "summary": summary or r.summary,
                        "layer": r.layer,
                        "confirmed": confirmed.reason,
                    },
                    layer=layer_from(r.layer, r.check) or Layer.APPLICATION,
                )
            )
        for series in [s for s in known if s not in crit_now]:
            del known[series]
            item = series[len(check_series(r.check)) + 1 : -1] or None
            signals.append(Signal.check_recovered(customer, host, r.check, ts=r.ts, item=item))
        if not known:
            del self._crit[hk][r.check]

    def _inventory(
        self,
        host_id: int,
        customer: str,
        host: str,
        seq: int,
        ts: float,
        document: Mapping[str, Any],
        signals: list[Signal],
    ) -> None:
        hk = (customer, host)
        products = extract_products(document)
        sections = _sections(document)
        before_products = self._products.get(hk)
        before_sections = self._inv_sections.get(hk)
        if before_products is None or before_sections is None:
            previous = self._previous_inventory(host_id, seq)
            if previous is not None:
                before_products = extract_products(previous)
                before_sections = _sections(previous)
        self._products[hk] = products
        self._inv_sections[hk] = sections
        if before_products is None or before_sections is None:
            return  # the host's first inventory: a baseline, not a change
        for product, old, new in product_changes(before_products, products):
            signals.append(Signal.product_upgrade(customer, host, product, old, new, ts=ts))
        changed = sorted(
            k for k in set(sections) | set(before_sections) if sections.get(k) != before_sections.get(k)
        )
        if changed:
            signals.append(
                Signal.changed(customer, host, Change(ChangeKind.INVENTORY, ",".join(changed)), ts=ts)
            )

    def _previous_inventory(self, host_id: int, seq: int) -> Mapping[str, Any] | None:
        """The host's inventory before ``seq`` (once per host after a start)."""
        try:
            return FleetRepo(self._store).previous_inventory(host_id, seq)
        except DatabaseError as exc:
            log.warning("previous inventory of host %d unavailable: %s", host_id, type(exc).__name__)
            return None

    # ------------------------------------------------------------------ incidents → cases

    def _pending_decisions(self, exclude: set[str]) -> list[Incident]:
        """Incidents whose case side may still have to act (a retry, or a window that ended)."""
        threshold = self.config.cases.min_severity.rank
        return [
            i
            for i in self.engine.incidents()
            if i.id not in exclude
            and (
                (i.case_id is not None and i.case_revision < i.revision)
                or (i.case_id is None and i.status is IncidentStatus.OPEN and i.severity.rank >= threshold)
            )
        ]

    def _maintenance(self, incident: Incident) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for host in incident.hosts:
            labels = self._labels.get((incident.customer, host), {})
            names = [w.name for w in self.calendar.active_windows(incident.customer, host, labels, self._now)]
            if names:
                found[host] = names
        return found

    def _act(self, incidents: Sequence[Incident], *, only_acted: bool = False) -> None:
        """Decide and carry out the case action of each incident; save its snapshot (with
        ``only_acted``, only when something was done: the retry pass runs every second)."""
        for incident in incidents:
            try:
                decision = decide(incident, self.config.cases, maintenance=self._maintenance(incident))
                self._carry_out(incident, decision)
                if not only_acted or decision.action is not CaseAction.NONE:
                    self.repo.save_incident(incident.to_dict(), now=self._now)
            except DatabaseError as exc:  # retried on a later tick: the decision was not recorded
                log.warning(
                    "case update for incident %s failed: %s; will retry", incident.id, type(exc).__name__
                )

    def _carry_out(self, incident: Incident, d: CaseDecision) -> None:
        now = self._now
        action = d.action
        if action is CaseAction.NONE:
            if incident.case_id is not None:  # e.g. a flapping series fired again: keep the evidence current
                self.repo.refresh_case(incident.case_id, case_content(incident), now=now)
            return
        if action is CaseAction.SUPPRESSED:
            self.engine.record_decision(d)
            log.info(
                "incident %s of %s: case suppressed by %s",
                incident.id,
                incident.customer,
                ", ".join(d.windows),
            )
            return
        content = case_content(incident)
        if action is CaseAction.OPEN_CASE:
            case_id = self.repo.open_case(
                content, now=now, text=f"case opened: {d.reason}", data={"decision": d.to_dict()}
            )
            self.engine.record_decision(d, case_id=case_id)
            if d.windows:
                self._note_windows(case_id, d)
            self._notify(case_id, incident, "opened")
        elif action is CaseAction.REOPEN_CASE and d.case_id is not None:
            if self.repo.reopen_case(d.case_id, content, now=now, text=d.reason):
                self._notify(d.case_id, incident, "reopened")
            self.engine.record_decision(d)
        elif action is CaseAction.UPDATE_CASE and d.case_id is not None:
            self.repo.update_case(d.case_id, content, now=now, text=d.reason, data={"revision": d.revision})
            self.engine.record_decision(d)
        elif action is CaseAction.NOTE_RECOVERY and d.case_id is not None:
            self.repo.update_case(
                d.case_id, content, now=now, kind="recovered",
                text=f"incident {incident.id} recovered: every signal back to normal and quiet",
                data={"revision": d.revision},
            )  # fmt: skip
            self.engine.record_decision(d)

    def _note_windows(self, case_id: str, d: CaseDecision) -> None:
        self.repo.add_event(
            case_id,
            "suppressed",
            f"some hosts are under maintenance ({', '.join(d.windows)}); the case opened for the others",
            now=self._now,
            data={"windows": list(d.windows)},
        )

    def _notify(self, case_id: str, incident: Incident, event: EventKind) -> None:
        if self.notifier is None:
            return
        from collector.notify import CaseEvent

        top = incident.top_cause
        base = self.config.public_url.rstrip("/")
        try:
            queued = self.notifier.notify(
                CaseEvent(
                    event=event,
                    case_id=case_id,
                    customer=incident.customer,
                    title=incident.title,
                    severity=incident.severity if incident.severity is not Severity.OK else Severity.WARN,
                    hosts=incident.hosts,
                    probable_cause="" if top is None else top.reason[:2000],
                    opened_at=self._now,
                    event_at=self._now,
                    url=f"{base}/cases/{case_id}" if base else "",
                )
            )
        except DatabaseError as exc:
            log.error(
                "notification of case %s not queued: the store failed (%s)", case_id, type(exc).__name__
            )
            return
        if queued:
            self.repo.add_event(
                case_id,
                "notified",
                f"{event} notification queued for {len(queued)} destination(s)",
                now=self._now,
                data={"notifications": queued},
            )

    # ------------------------------------------------------------------ roster

    def _refresh_roster(self, *, initial: bool) -> None:
        """The customers' agents and host labels: neighbours for silence, scopes for windows.

        On the first read (``initial``), agents seen recently are watched for silence from
        now on; later, an agent is watched from its first stored batch.
        """
        try:
            entries = FleetRepo(self._store).roster()
        except DatabaseError as exc:
            log.warning("agent roster unavailable: %s", type(exc).__name__)
            return
        roster: dict[str, dict[str, str | None]] = {}
        active: set[tuple[str, str]] = set()
        horizon = self._started - max(_SILENT_HORIZON_S, 10 * self._silent_after)
        for entry in entries:
            hk = (entry.customer, entry.host)
            active.add(hk)
            self._labels[hk] = entry.labels
            roster.setdefault(hk[0], {})[hk[1]] = self._labels[hk].get("network")
            last_seen_at = entry.last_seen_at
            if initial and hk not in self._last_seen and last_seen_at is not None and last_seen_at >= horizon:
                # watched from now on: a collector restart is no reason to call an agent silent
                self._last_seen[hk] = max(float(last_seen_at), self._started)
        for hk in [hk for hk in self._last_seen if hk not in active]:  # revoked: no longer watched
            del self._last_seen[hk]
            self._silent.discard(hk)
        for customer, hosts_of in roster.items():
            self.engine.set_hosts(customer, hosts_of)

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """Everything needed to continue after a restart, JSON-able."""
        return {
            "v": STATE_VERSION,
            "detectors": self.bank.to_state(),
            "engine": self.engine.to_state(),
            "last_seen": [[c, h, t] for (c, h), t in self._last_seen.items()],
            "silent": [list(hk) for hk in sorted(self._silent)],
            "crit": [
                [c, h, check, series]
                for (c, h), checks in self._crit.items()
                for check, series in checks.items()
            ],
            "soft": self._confirm.to_state(),
            "products": [[c, h, p] for (c, h), p in self._products.items()],
            "sections": [[c, h, s] for (c, h), s in self._inv_sections.items()],
        }

    def save_state(self, *, wait: bool = False) -> None:
        """Save :meth:`state` to the store (compressed JSON, one row per shard).

        The snapshot (``state()`` and its JSON text, about 30 µs per series) is taken on the
        calling thread, the ingest path, so it is consistent; compressing it (zlib releases
        the GIL) and writing it run on one background thread, in order, so the ingest path
        does not wait for them. ``wait``: return only once it is stored (shutdown).
        """
        text = json.dumps(self.state(), separators=(",", ":")).encode()
        if self._saver is None:
            self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detection-state")
        saved = self._saver.submit(self._write_state, text, self._now)
        if wait:
            saved.result()

    def wait_saved(self) -> None:
        """Return once every state save started so far is stored (or failed, logged)."""
        if self._saver is not None:
            self._saver.submit(lambda: None).result()

    def _write_state(self, text: bytes, now: float) -> None:
        try:
            self.repo.save_state(self._shard, zlib.compress(text, 6), now=now)
        except DatabaseError as exc:
            log.warning("detection state not saved: %s; will retry", type(exc).__name__)

    def _load_state(self) -> None:
        try:
            blob = self.repo.load_state(self._shard)
        except DatabaseError as exc:
            log.warning("detection state unavailable: %s; starting fresh", type(exc).__name__)
            return
        if blob is None:
            return
        try:
            state = json.loads(zlib.decompress(blob))
            if state.get("v") != STATE_VERSION:
                raise ValueError(f"state version {state.get('v')!r}, expected {STATE_VERSION}")
            self.bank.load_state(state["detectors"])
            self.engine.load_state(state["engine"])
            self._last_seen = {(c, h): max(float(t), self._started) for c, h, t in state["last_seen"]}
            self._silent = {(c, h) for c, h in state["silent"]}
            self._crit = {}
            for c, h, check, series in state["crit"]:
                self._crit.setdefault((c, h), {})[check] = {str(k): float(v) for k, v in series.items()}
            self._confirm.load_state(state.get("soft", ()))  # absent in states saved before soft states
            self._products = {(c, h): dict(p) for c, h, p in state["products"]}
            self._inv_sections = {(c, h): dict(s) for c, h, s in state["sections"]}
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            log.warning("detection state of shard %s unreadable (%s); starting fresh", self._shard, exc)
            self.bank.detectors.clear()
            return
        log.info("detection state restored: %d series", len(self.bank.detectors))


def make_observer(
    store: Any,
    config: Any,
    *,
    clock: Callable[[], float] = time.time,
    notifier: Notifier | None = None,
    new_id: Callable[[], str] | None = None,
) -> IngestObserver | None:
    """The observer for ``store`` under ``config`` (a CollectorConfig); None when detection is off.

    ``clock``, ``notifier`` and ``new_id`` (incident ids) are for tests; by default the
    notifier queues into the store's outbox when any customer has destinations.
    """
    emergency: EmergencyConfig = config.emergency
    if not emergency.detection.enabled:
        return None
    from diagconfig import ConfigError

    try:
        calendar = maintenance_calendar(emergency)
    except ConfigError as exc:  # ValueError: what the ingest worker reports at start-up
        raise ValueError(str(exc)) from None
    if notifier is None and emergency.notify.customers:
        from collector.notify import Notifier

        notifier = Notifier.from_config(store, emergency.notify, clock=clock)
    return LiveDetection(store, emergency, calendar=calendar, notifier=notifier, clock=clock, new_id=new_id)
