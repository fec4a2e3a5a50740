"""Signals → incidents → probable causes → the case-opening decision.

Pure and deterministic (no database, no network, clock and ids passed in). The wiring
calls it like this::

    from collector.incidents import CasePolicy, IncidentEngine, Signal, decide

    engine = IncidentEngine(EngineConfig(...), clock=time.time)   # or IncidentEngine.from_state(saved)
    engine.set_hosts("acme", {"db1": "dc1", "web1": "dc1"})        # the customer's agents, network label

    # ingest: one call per batch, signals built with the Signal constructors
    changed = engine.feed_many([
        Signal.from_detector(anomaly_or_recovery, customer="acme", host="db1"),
        Signal.check_crit("acme", "web1", "application.http", "HTTP_DOWN", ts=now, item="shop"),
        Signal.check_recovered("acme", "web1", "application.http", ts=now, item="shop"),
        Signal.agent_silent("acme", "web1", last_seen_ts=t, ts=now),  Signal.agent_back(...),
        Signal.product_upgrade("acme", "web1", "shop", "1.2", "1.3", ts=row_ts),
        Signal.changed("acme", "web1", Change(ChangeKind.SERVICE_RESTARTED, "nginx.service"), ts=t),
    ])
    changed += engine.tick()                   # periodically (e.g. every 30 s): settle, resolve

    for incident in changed:
        d = decide(incident, CasePolicy(), maintenance={host: active window ids, ...})
        # OPEN_CASE: create the case (idempotent on incident.id) from incident.title,
        #   .severity, .hosts, .causes (ranked, .reason/.reason_key/.confidence/.evidence),
        #   .timeline; then engine.record_decision(d, case_id=new_id)
        # REOPEN_CASE d.case_id / UPDATE_CASE d.case_id / NOTE_RECOVERY d.case_id /
        # SUPPRESSED d.windows (annotate): act, then engine.record_decision(d)
        # NONE: nothing

    save(json.dumps(engine.to_state()))        # after each batch / on shutdown

Modules: :mod:`.signals` (the input), :mod:`.confirm` (soft/hard states of CRIT check
results, before they become signals), :mod:`.engine` (grouping, silence, changes,
recovery), :mod:`.causes` (ranking), :mod:`.cases` (decision), :mod:`.model` (records).
Each module's docstring states its rules.
"""

from collector.incidents.cases import CasePolicy, decide
from collector.incidents.causes import Cause, CauseKind, OutageFacts, rank_causes
from collector.incidents.config import EngineConfig
from collector.incidents.engine import IncidentEngine
from collector.incidents.model import (
    CaseAction,
    CaseDecision,
    Incident,
    IncidentKind,
    IncidentStatus,
    Member,
    TimelineEntry,
)
from collector.incidents.signals import (
    Change,
    ChangeKind,
    Signal,
    SignalKind,
    ceiling_from,
    check_series,
    layer_from,
    layer_of,
)

__all__ = [
    "CaseAction",
    "CaseDecision",
    "CasePolicy",
    "Cause",
    "CauseKind",
    "Change",
    "ChangeKind",
    "EngineConfig",
    "Incident",
    "IncidentEngine",
    "IncidentKind",
    "IncidentStatus",
    "Member",
    "OutageFacts",
    "Signal",
    "SignalKind",
    "TimelineEntry",
    "ceiling_from",
    "check_series",
    "decide",
    "layer_from",
    "layer_of",
    "rank_causes",
]
