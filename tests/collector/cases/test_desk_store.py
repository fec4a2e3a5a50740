"""The service desk's case repository on a real store (SQLite and PostgreSQL): opening by
hand, the state machine (a property test against a model of the transitions), first
responder through transfers, time, product decisions linked to upgrade records,
complaint handling, lists with filters and pages, scoping."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector.store import IngestBatch, Scope, Store
from collector.store.case_states import ACTIONS, CASE_STATES, allowed_actions
from collector.store.cases import CaseRepo
from collector.store.desk_cases import DeskRepo, NewCase
from collector.store.errors import Conflict, NotFound, StoreError
from collector.store.fleet import FleetRepo
from collector.store.types import InventoryRow
from tests.collector.cases.test_api import open_case

T0 = 1_700_000_000.0
ALL = Scope.everything()


def hotline(customer: str = "acme", type: str = "consultation", **kw: str) -> NewCase:
    return NewCase(customer=customer, type=type, channel="hotline", title="how do I export?", **kw)


@pytest.fixture
def desk(store: Store) -> DeskRepo:
    store.enroll_agent("acme", "db2", "acme-db2")
    store.enroll_agent("globex", "erp2", "globex-erp2")
    return DeskRepo(store)


def act(store: Store, case_id: str, action: str, now: float) -> None:
    """Carry out one step as the API would (ack/take/resolve/close are CaseRepo's)."""
    cases, desk = CaseRepo(store), DeskRepo(store)
    if action in ("ack", "take"):
        cases.acknowledge(ALL, case_id, actor="li", now=now, action=action)  # type: ignore[arg-type]
    elif action == "resolve":
        cases.resolve(ALL, case_id, actor="li", now=now)
    elif action == "close":
        cases.close(ALL, case_id, actor="li", now=now)
    else:
        desk.step(ALL, case_id, action, actor="li", now=now)  # type: ignore[arg-type]


def test_open_by_hand_validates_every_field_and_counts_per_customer(store: Store, desk: DeskRepo) -> None:
    open_case(store, "acme", "db1")  # C-acme-1, from detection
    case = desk.open(ALL, hotline(host="db2", contact="Wang"), actor="li", now=T0)
    assert (case.id, case.state, case.type, case.channel, case.hosts, case.contact) == (
        "C-acme-2", "new", "consultation", "hotline", ("db2",), "Wang",
    )  # fmt: skip
    assert (case.incident_id, case.kind, case.first_responder, case.owner) == (None, None, None, None)
    assert case.events[0].data == {"type": "consultation", "channel": "hotline", "from": None, "to": "new"}
    routine = desk.open(ALL, hotline(type="routine", subtype="data_error"), actor="li", now=T0)
    assert routine.subtype == "data_error"
    bad = {
        "type": hotline(type="outage"),
        "subtype": hotline(type="routine"),
        "channel": NewCase("acme", "routine", "automatic", "x", subtype="data_error"),
        "host": hotline(host="erp2"),  # globex's host, not acme's
        "customer": hotline(customer="nobody"),
        "title": NewCase("acme", "consultation", "email", "   "),
    }
    for field, new in bad.items():
        with pytest.raises(StoreError, match=rf"^{field}:"):
            desk.open(ALL, new, actor="li", now=T0)
    with pytest.raises(NotFound):  # a customer's scope cannot open a case for another customer
        desk.open(Scope.of("globex"), hotline(), actor="x", now=T0)
    assert [c.id for c in CaseRepo(store).list(Scope.of("acme"))] == ["C-acme-3", "C-acme-2", "C-acme-1"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(ACTIONS)), min_size=1, max_size=12))
@example(["take", "start", "wait", "close", "resume", "resolve", "follow-up", "close", "reopen", "wait"])
def test_every_step_follows_the_state_machine(desk: DeskRepo, store: Store, actions: list[str]) -> None:
    """Against a model: an allowed step moves to its target and leaves a {from, to} event;
    a refused one is a Conflict naming the steps allowed, and changes nothing."""
    case_id = desk.open(ALL, hotline(), actor="li", now=T0).id
    state = "new"
    for i, action in enumerate(actions):
        now = T0 + i + 1
        if action in allowed_actions(state):
            act(store, case_id, action, now)
            expected = ACTIONS[action].target  # type: ignore[index]
            case = CaseRepo(store).get(ALL, case_id)
            assert case.state == expected
            assert case.events[-1].data["from"] == state and case.events[-1].data["to"] == expected
            assert case.events[-1].ts == now
            state = expected
        else:
            before = CaseRepo(store).get(ALL, case_id)
            with pytest.raises(Conflict) as refused:
                act(store, case_id, action, now)
            message = str(refused.value)
            assert f"is {state}" in message
            assert f"allowed now: {', '.join(allowed_actions(state)) or 'none'}" in message
            assert CaseRepo(store).get(ALL, case_id) == before
    # The state history the SLA clocks read: a chain of {from, to} from opening to now.
    changes = [e.data for e in CaseRepo(store).get(ALL, case_id).events if "to" in e.data]
    assert changes[0]["from"] is None
    for previous, change in itertools.pairwise(changes):
        assert change["from"] == previous["to"] and change["to"] in CASE_STATES


def test_first_responder_stays_accountable_through_transfers(store: Store, desk: DeskRepo) -> None:
    case_id = desk.open(ALL, hotline(), actor="desk", now=T0).id
    CaseRepo(store).acknowledge(ALL, case_id, actor="li", now=T0 + 1, action="take")
    desk.transfer(ALL, case_id, to="zhang", reason="needs a DBA", actor="li", now=T0 + 2)
    case = desk.transfer(ALL, case_id, to="wang", reason="night shift", actor="zhang", now=T0 + 3)
    assert (case.first_responder, case.owner) == ("li", "wang")
    moves = [e.data for e in case.events if e.kind == "transferred"]
    assert moves == [
        {"assignee_from": "li", "assignee_to": "zhang", "reason": "needs a DBA"},
        {"assignee_from": "zhang", "assignee_to": "wang", "reason": "night shift"},
    ]
    assert all("to" not in m for m in moves)  # only state changes carry from/to
    with pytest.raises(Conflict, match="already assigned to wang"):
        desk.transfer(ALL, case_id, to="wang", reason="again", actor="li", now=T0 + 4)
    with pytest.raises(StoreError, match=r"^reason:"):
        desk.transfer(ALL, case_id, to="li", reason=" ", actor="li", now=T0 + 4)
    CaseRepo(store).resolve(ALL, case_id, actor="wang", now=T0 + 5)
    CaseRepo(store).close(ALL, case_id, actor="wang", now=T0 + 6)
    with pytest.raises(Conflict, match="reopen it before"):
        desk.transfer(ALL, case_id, to="li", reason="back", actor="li", now=T0 + 7)
    with pytest.raises(NotFound):
        desk.transfer(Scope.of("globex"), case_id, to="x", reason="y", actor="x", now=T0 + 8)


def test_time_log_lists_and_totals_per_case(store: Store, desk: DeskRepo) -> None:
    case_id = desk.open(ALL, hotline(), actor="li", now=T0).id
    other = desk.open(ALL, hotline(), actor="li", now=T0).id
    day = dt.date(2023, 11, 14)
    desk.log_time(ALL, case_id, minutes=90, activity="on-site repair", mode="onsite", work_date=day,
                  engineer="li", actor="li", now=T0)  # fmt: skip
    desk.log_time(ALL, case_id, minutes=15, activity="call", mode="remote", work_date=day - dt.timedelta(1),
                  engineer="zhang", actor="li", now=T0)  # fmt: skip
    desk.log_time(ALL, other, minutes=5, activity="x", mode="remote", work_date=day, engineer="li",
                  actor="li", now=T0)  # fmt: skip
    log = desk.time_log(Scope.of("acme"), case_id)
    assert [(e.engineer, e.minutes, e.mode) for e in log.entries] == [
        ("zhang", 15, "remote"),
        ("li", 90, "onsite"),
    ]
    assert (log.total_minutes, log.onsite_minutes, log.remote_minutes) == (105, 90, 15)
    for kwargs, field in (
        ({"minutes": 0}, "minutes"),
        ({"minutes": 1441}, "minutes"),
        ({"mode": "moon"}, "mode"),
        ({"activity": " "}, "activity"),
        ({"work_date": day + dt.timedelta(days=30)}, "work_date"),
    ):
        args = {"minutes": 10, "activity": "a", "mode": "remote", "work_date": day, **kwargs}
        with pytest.raises(StoreError, match=rf"^{field}:"):
            desk.log_time(ALL, case_id, engineer="li", actor="li", now=T0, **args)  # type: ignore[arg-type]
    assert desk.time_log(ALL, case_id).total_minutes == 105  # nothing half-written
    with pytest.raises(NotFound):
        desk.time_log(Scope.of("globex"), case_id)


def test_decision_and_release_link_the_customers_upgrade_record(store: Store, desk: DeskRepo) -> None:
    agent, _ = store.enroll_agent("acme", "app1", "acme-app1")
    g_agent, _ = store.enroll_agent("globex", "app2", "globex-app2")
    for ag in (agent, g_agent):
        for seq, version in ((1, "5.1.0"), (2, "5.2.0")):
            doc = {"os": "debian", "products": {"erp": version}}
            store.ingest(
                ag, IngestBatch(seq, seq, [], [], [InventoryRow(seq, T0 + seq, doc, f"{seq:064x}")], [])
            )
    (ours,) = FleetRepo(store).upgrades(Scope.of("acme"))
    (theirs,) = FleetRepo(store).upgrades(Scope.of("globex"))
    case_id = desk.open(ALL, hotline(type="perfective"), actor="li", now=T0).id
    with pytest.raises(Conflict, match="not decided yet"):
        desk.set_release(ALL, case_id, release="5.2.0", upgrade_id=None, actor="li", now=T0)
    desk.decide(ALL, case_id, decision="accepted", text="fits the roadmap", actor="pm", now=T0 + 1)
    with pytest.raises(StoreError, match=r"^upgrade_id:"):  # another customer's record
        desk.set_release(ALL, case_id, release="5.2.0", upgrade_id=theirs.row_id, actor="li", now=T0)
    case = desk.set_release(ALL, case_id, release="5.2.0", upgrade_id=ours.row_id, actor="li", now=T0 + 2)
    assert (case.decision, case.decision_text, case.release, case.upgrade_id) == (
        "accepted", "fits the roadmap", "5.2.0", ours.row_id,
    )  # fmt: skip
    assert [e.kind for e in case.events][-2:] == ["decision", "release"]
    consultation = desk.open(ALL, hotline(), actor="li", now=T0).id
    with pytest.raises(Conflict, match="only adaptive and perfective"):
        desk.decide(ALL, consultation, decision="accepted", text="x", actor="pm", now=T0)
    with pytest.raises(StoreError, match=r"^decision:"):
        desk.decide(ALL, case_id, decision="maybe", text="x", actor="pm", now=T0)


def test_a_complaint_closes_only_after_its_outcome_and_callback(store: Store, desk: DeskRepo) -> None:
    cases = CaseRepo(store)
    case_id = desk.open(ALL, hotline(type="complaint"), actor="desk", now=T0).id
    cases.acknowledge(ALL, case_id, actor="li", now=T0 + 1, action="take")
    desk.complaint_step(
        ALL, case_id, step="handed_over", text="to the DBA team", team="DBA", actor="li", now=T0 + 2
    )
    desk.complaint_step(ALL, case_id, step="supervised", text="checked daily", actor="mgr", now=T0 + 3)
    with pytest.raises(Conflict, match="outcome before the callback"):
        desk.complaint_step(ALL, case_id, step="callback", text="called", actor="li", now=T0 + 4)
    with pytest.raises(StoreError, match=r"^summary:"):
        desk.complaint_step(ALL, case_id, step="outcome", text="fixed", actor="li", now=T0 + 4)
    with pytest.raises(StoreError, match=r"^team:"):
        desk.complaint_step(ALL, case_id, step="handed_over", text="to someone", actor="li", now=T0 + 4)
    cases.resolve(ALL, case_id, actor="li", now=T0 + 5)
    with pytest.raises(Conflict, match="before its outcome and callback are recorded"):
        cases.close(ALL, case_id, actor="li", now=T0 + 6)
    desk.complaint_step(ALL, case_id, step="outcome", text="index rebuilt", summary="slow report fixed",
                        actor="li", now=T0 + 7)  # fmt: skip
    with pytest.raises(Conflict, match="before its callback are recorded"):
        cases.close(ALL, case_id, actor="li", now=T0 + 8)
    desk.complaint_step(ALL, case_id, step="callback", text="customer satisfied", actor="li", now=T0 + 9)
    case = cases.close(ALL, case_id, actor="li", now=T0 + 10)
    assert case.state == "closed"
    steps = [e.data for e in case.events if e.kind == "complaint_step"]
    assert [s["step"] for s in steps] == ["handed_over", "supervised", "outcome", "callback"]
    assert steps[0]["team"] == "DBA" and steps[2]["summary"] == "slow report fixed"
    other = desk.open(ALL, hotline(), actor="desk", now=T0).id
    with pytest.raises(Conflict, match="complaint steps are for complaints"):
        desk.complaint_step(ALL, other, step="supervised", text="x", actor="li", now=T0)


def test_lists_filter_by_type_channel_assignee_and_page_without_repeats(store: Store, desk: DeskRepo) -> None:
    open_case(store, "acme", "db1")  # an emergency case from detection, channel automatic
    for i in range(5):
        new = NewCase("acme" if i % 2 else "globex", "routine", "email", f"r{i}", subtype="user_training")
        desk.open(ALL, new, actor="li", now=T0)  # the same opening time: the position orders them
    taken = desk.open(ALL, hotline(), actor="li", now=T0 + 5).id
    CaseRepo(store).acknowledge(ALL, taken, actor="li", now=T0 + 6, action="take")
    repo = CaseRepo(store)
    assert [c.id for c in repo.list(ALL, channel="automatic")] == ["C-acme-1"]
    assert [c.id for c in repo.list(ALL, assignee="li")] == [taken]
    assert {c.type for c in repo.list(ALL, type="routine")} == {"routine"}
    assert [c.id for c in repo.list(Scope.of("globex"), type="routine")] == [
        "C-globex-3",
        "C-globex-2",
        "C-globex-1",
    ]
    seen: list[str] = []
    before = None
    while True:
        page = repo.list(ALL, limit=2, before=before)
        seen += [c.id for c in page]
        if len(page) < 2:
            break
        before = (page[-1].opened_at, page[-1].position)
    everything = [c.id for c in repo.list(ALL)]
    assert seen == everything and len(set(seen)) == 7
