"""The service desk and remote-session pages over plain HTTP against a real store (SQLite
and PostgreSQL): each role, another customer's people, CSRF, bad input, both languages."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from collector.store import Scope, Store
from collector.store.cases import CaseRecord, CaseRepo
from collector.store.desk_cases import DeskRepo
from collector.store.sessions import SessionRepo
from tests.collector.web.seed import seed
from tests.collector.web.test_pages import client_for, csrf_of, signed_in

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl eng@laptop"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKeyHostKey"


@pytest.fixture
def site(store: Store) -> Iterator[tuple[Store, dict[str, str]]]:
    tokens = seed(store)
    tokens["manager"] = store.create_api_token("boss", "service_manager")
    yield store, tokens


def _session(store: Store, case_id: str) -> str:
    return SessionRepo(store).request(
        Scope.everything(), engineer="eng", host="db1", case_id=case_id, reason="look at /data",
        mode="shell", public_key=KEY, duration_s=3600, now=time.time(),
    ).id  # fmt: skip


def _case(store: Store, case_id: str) -> CaseRecord:
    return CaseRepo(store).get(Scope.everything(), case_id)


# --------------------------------------------------------------------------- cases


def test_open_take_transfer_log_time_and_resolve_with_the_forms(site) -> None:
    store, tokens = site
    engineer = signed_in(store, tokens["engineer"])
    form = engineer.get("/cases/new")
    assert form.status_code == 200 and 'name="channel"' in form.text and ">hotline<" in form.text
    opened = engineer.post(
        "/cases/new",
        data={"csrf": csrf_of(form.text), "customer": "acme", "type": "routine", "subtype": "data_error",
              "channel": "hotline", "severity": "WARN", "title": "Report totals are wrong",
              "description": "since Monday\nin the monthly report", "host": "db1", "contact": "Ms Li"},
        follow_redirects=False,
    )  # fmt: skip
    assert opened.status_code == 303, opened.text
    case_id = opened.headers["location"].rsplit("/", 1)[1]
    case = _case(store, case_id)
    assert (case.type, case.subtype, case.channel, case.state, case.hosts) == (
        "routine", "data_error", "hotline", "new", ("db1",),
    )  # fmt: skip
    page = engineer.get(f"/cases/{case_id}").text
    assert 'class="case-type">routine · data error<' in page and 'class="case-channel">hotline<' in page
    buttons = re.findall(
        r'name="action" value="([a-z-]+)"', page.split('class="desk-steps"')[1].split("</form>")[0]
    )
    assert buttons == ["take", "resolve"]  # allowed_actions("new") less the API's ack
    token = csrf_of(page)

    assert engineer.post(f"/cases/{case_id}/steps", data={"csrf": token, "action": "take"}).status_code == 200
    case = _case(store, case_id)
    assert case.state == "acknowledged" and case.owner == "eng" and case.first_responder == "eng"
    # A step the state does not allow is a 409 naming what is allowed, and changes nothing.
    refused = engineer.post(f"/cases/{case_id}/steps", data={"csrf": token, "action": "close"})
    assert refused.status_code == 409 and "start, resolve" in refused.text
    assert _case(store, case_id).state == "acknowledged"

    moved = engineer.post(
        f"/cases/{case_id}/transfer", data={"csrf": token, "to": "wang", "reason": "DB expert"}
    )
    assert moved.status_code == 200
    case = _case(store, case_id)
    assert case.owner == "wang" and case.first_responder == "eng"
    assert 'class="assignee">wang<' in moved.text and 'class="first-responder">eng<' in moved.text

    for minutes, mode in (("45", "remote"), ("90", "onsite")):
        logged = engineer.post(
            f"/cases/{case_id}/time",
            data={"csrf": token, "minutes": minutes, "activity": "checked the ETL", "mode": mode},
        )
        assert logged.status_code == 200
    assert 'class="num total">135<' in logged.text and "on-site 90 · remote 45" in logged.text
    assert DeskRepo(store).time_log(Scope.everything(), case_id).total_minutes == 135

    for action in ("start", "wait", "resume", "resolve", "follow-up", "close", "reopen"):
        done = engineer.post(
            f"/cases/{case_id}/steps", data={"csrf": token, "action": action, "note": action}
        )
        assert done.status_code == 200, (action, done.text)
    case = _case(store, case_id)
    assert case.state == "in_progress" and case.reopened == 1
    kinds = [e.kind for e in case.events]
    assert kinds[:3] == ["opened", "acknowledged", "transferred"] and kinds[-1] == "reopened"

    # The list filters by type, channel and assignee, and shows type and channel.
    listed = engineer.get(
        "/cases", params={"state": "all", "type": "routine", "channel": "hotline", "assignee": "wang"}
    )
    assert f'data-case="{case_id}"' in listed.text and f'data-case="{tokens["case"]}"' not in listed.text
    assert engineer.get("/cases", params={"state": "all", "type": "emergency"}).text.count("data-case=") == 1
    assert engineer.get("/cases", params={"assignee": "nobody"}).text.count("data-case=") == 0
    assert engineer.get("/cases", params={"type": "bogus"}).status_code == 400
    engineer.cookies.set("diag_lang", "zh-CN")
    zh = engineer.get("/cases", params={"state": "all"}).text
    assert (
        'class="case-type">日常<' in zh
        and 'class="case-channel">热线<' in zh
        and 'class="case-type">应急<' in zh
    )


def test_bad_input_is_a_clear_4xx_and_writes_nothing(site) -> None:
    store, tokens = site
    engineer = signed_in(store, tokens["engineer"])
    token = csrf_of(engineer.get("/cases/new").text)
    base = {"csrf": token, "customer": "acme", "type": "routine", "channel": "hotline", "severity": "WARN",
            "title": "x"}  # fmt: skip
    before = len(CaseRepo(store).list(Scope.everything(), limit=100))
    for change, status, words in (
        ({}, 422, "subtype"),  # a routine case needs its subtype (the store's rule)
        ({"type": "nonsense"}, 422, "type"),
        ({"channel": "automatic", "type": "consultation"}, 422, "channel"),
        ({"title": "a\x00b", "type": "consultation"}, 422, "control characters"),
        ({"title": "", "type": "consultation"}, 422, "title"),
        ({"host": "nope", "type": "consultation"}, 422, "host"),
        ({"customer": "nosuch", "type": "consultation"}, 422, "nosuch"),
    ):
        answer = engineer.post("/cases/new", data={**base, **change})
        assert answer.status_code == status and words in answer.text, (change, answer.text[-600:])
        assert 'role="alert"' in answer.text  # the form again, with the error
    assert len(CaseRepo(store).list(Scope.everything(), limit=100)) == before
    case_id = tokens["case"]
    for path, body in (
        ("time", {"minutes": "0", "activity": "a", "mode": "remote"}),
        ("time", {"minutes": "30", "activity": "a", "mode": "moon"}),
        ("time", {"minutes": "30", "activity": "a", "mode": "remote", "work_date": "2999-01-01"}),
        ("time", {"minutes": "30", "activity": "a", "mode": "remote", "work_date": "yesterday"}),
        ("transfer", {"to": "", "reason": "r"}),
        ("decision", {"decision": "accepted", "text": "ok"}),  # not an adaptive case: 409
        ("steps", {"action": "explode"}),
    ):
        answer = engineer.post(f"/cases/{case_id}/{path}", data={"csrf": token, **body})
        assert answer.status_code in (409, 422), (path, body, answer.status_code)
        assert "Traceback" not in answer.text
    assert DeskRepo(store).time_log(Scope.everything(), case_id).entries == ()


def test_decision_release_and_complaint_forms(site) -> None:
    store, tokens = site
    manager = signed_in(store, tokens["manager"])  # a service manager works cases, as in the API
    token = csrf_of(manager.get("/cases/new").text)

    def open_case(kind: str) -> str:
        answer = manager.post(
            "/cases/new",
            data={"csrf": token, "customer": "acme", "type": kind, "channel": "email", "severity": "INFO",
                  "title": f"a {kind} case"},
            follow_redirects=False,
        )  # fmt: skip
        assert answer.status_code == 303, answer.text
        return str(answer.headers["location"]).rsplit("/", 1)[1]

    change = open_case("perfective")
    page = manager.get(f"/cases/{change}").text
    assert f'action="/cases/{change}/decision"' in page and "/release" not in page
    early = manager.post(f"/cases/{change}/release", data={"csrf": token, "release": "5.2"})
    assert early.status_code == 409 and "accepted decision" in early.text
    manager.post(
        f"/cases/{change}/decision", data={"csrf": token, "decision": "accepted", "text": "worth it"}
    )
    shipped = manager.post(
        f"/cases/{change}/release", data={"csrf": token, "release": "5.2", "upgrade_id": ""}
    )
    assert shipped.status_code == 200 and "5.2" in shipped.text and "accepted: worth it" in shipped.text
    assert (_case(store, change).decision, _case(store, change).release) == ("accepted", "5.2")

    complaint = open_case("complaint")
    manager.post(f"/cases/{complaint}/steps", data={"csrf": token, "action": "resolve"})
    refused = manager.post(f"/cases/{complaint}/steps", data={"csrf": token, "action": "close"})
    assert refused.status_code == 409 and "outcome" in refused.text
    too_early = manager.post(
        f"/cases/{complaint}/complaint", data={"csrf": token, "step": "callback", "text": "x"}
    )
    assert too_early.status_code == 409
    no_summary = manager.post(
        f"/cases/{complaint}/complaint", data={"csrf": token, "step": "outcome", "text": "x"}
    )
    assert no_summary.status_code == 422 and "summary" in no_summary.text
    for step, extra in (("outcome", {"summary": "apologised"}), ("callback", {})):
        ok = manager.post(
            f"/cases/{complaint}/complaint", data={"csrf": token, "step": step, "text": "done", **extra}
        )
        assert ok.status_code == 200
    assert "outcome recorded · callback to the customer" in ok.text
    assert (
        manager.post(f"/cases/{complaint}/steps", data={"csrf": token, "action": "close"}).status_code == 200
    )
    assert _case(store, complaint).state == "closed"


def test_roles_and_other_customers_on_the_desk_forms(site) -> None:
    store, tokens = site
    case_id = tokens["case"]
    # A customer admin opens cases for its own customer through remote or e-mail only.
    admin = signed_in(store, tokens["admin"])
    form = admin.get("/cases/new").text
    assert 'name="customer"' not in form and ">hotline<" not in form and ">remote<" in form
    token = csrf_of(form)
    posed = admin.post("/cases/new", data={"csrf": token, "type": "consultation", "channel": "hotline",
                                           "severity": "INFO", "title": "q"})  # fmt: skip
    assert posed.status_code == 403
    mine = admin.post(
        "/cases/new",
        data={"csrf": token, "customer": "globex", "type": "consultation", "channel": "remote",
              "severity": "INFO", "title": "how do I"},
        follow_redirects=False,
    )  # fmt: skip
    assert mine.status_code == 303
    assert (
        _case(store, mine.headers["location"].rsplit("/", 1)[1]).customer == "acme"
    )  # its own, whatever it posts
    page = admin.get(f"/cases/{case_id}").text
    assert "/steps" not in page and "/transfer" not in page and "/time" not in page
    for path, body in (("steps", {"action": "take"}), ("transfer", {"to": "x", "reason": "y"}),
                       ("time", {"minutes": "5", "activity": "a", "mode": "remote"})):  # fmt: skip
        assert admin.post(f"/cases/{case_id}/{path}", data={"csrf": token, **body}).status_code == 403

    viewer = signed_in(store, tokens["viewer"])
    assert viewer.get("/cases/new").status_code == 403
    vtoken = csrf_of(viewer.get("/fleet").text)
    assert viewer.post(f"/cases/{case_id}/steps", data={"csrf": vtoken, "action": "take"}).status_code == 403
    assert 'href="/cases/new"' not in viewer.get("/cases").text

    globex = signed_in(store, tokens["globex"])
    gtoken = csrf_of(globex.get("/fleet").text)
    for path in ("steps", "transfer", "time", "decision", "release", "complaint"):
        assert (
            globex.post(f"/cases/{case_id}/{path}", data={"csrf": gtoken, "action": "take"}).status_code
            == 404
        )
    assert f'data-case="{case_id}"' not in globex.get("/cases", params={"state": "all"}).text
    # No CSRF: refused before anything else.
    engineer = signed_in(store, tokens["engineer"])
    assert engineer.post(f"/cases/{case_id}/steps", data={"action": "take"}).status_code == 403
    assert _case(store, case_id).state == "new"


# --------------------------------------------------------------------------- sessions


def test_session_pages_approve_and_revoke_by_role(site) -> None:
    store, tokens = site
    session_id = _session(store, tokens["case"])
    engineer = signed_in(store, tokens["engineer"])
    listed = engineer.get("/remote-sessions").text
    assert f'data-session="{session_id}"' in listed and 'href="/remote-sessions"' in listed  # in the nav
    page = engineer.get(f"/remote-sessions/{session_id}").text
    assert (
        "look at /data" in page and "requested" in page and "/approve" not in page
    )  # engineers never approve
    assert f'action="/remote-sessions/{session_id}/revoke"' in page
    case_page = engineer.get(f"/cases/{tokens['case']}").text
    assert (
        f'href="/remote-sessions?case={tokens["case"]}"' in case_page and "1 remote session(s)" in case_page
    )
    token = csrf_of(page)
    assert engineer.post(f"/remote-sessions/{session_id}/approve", data={"csrf": token}).status_code == 403

    viewer = signed_in(store, tokens["viewer"])
    vpage = viewer.get(f"/remote-sessions/{session_id}").text
    assert "/approve" not in vpage and "/revoke" not in vpage
    assert (
        viewer.post(f"/remote-sessions/{session_id}/revoke", data={"csrf": csrf_of(vpage)}).status_code == 403
    )

    globex = signed_in(store, tokens["globex"])
    assert globex.get(f"/remote-sessions/{session_id}").status_code == 404
    assert globex.get("/remote-sessions/s-0000000000000000").status_code == 404  # the same as a missing one
    assert session_id not in globex.get("/remote-sessions").text
    gtoken = csrf_of(globex.get("/fleet").text)
    assert globex.post(f"/remote-sessions/{session_id}/approve", data={"csrf": gtoken}).status_code == 404
    assert engineer.get("/remote-sessions/../../etc").status_code == 404

    admin = signed_in(store, tokens["admin"])
    apage = admin.get(f"/remote-sessions/{session_id}").text
    assert f'action="/remote-sessions/{session_id}/approve"' in apage
    assert admin.post(f"/remote-sessions/{session_id}/approve", data={}).status_code == 403  # no CSRF
    assert SessionRepo(store).get(Scope.everything(), session_id).state == "requested"
    approved = admin.post(f"/remote-sessions/{session_id}/approve", data={"csrf": csrf_of(apage)})
    assert approved.status_code == 200
    s = SessionRepo(store).get(Scope.everything(), session_id)
    assert (s.state, s.approved_by) == ("approved", "acme-admin")
    again = admin.post(f"/remote-sessions/{session_id}/approve", data={"csrf": csrf_of(apage)})
    assert again.status_code == 409 and "already approved" in again.text

    # The agent pins its host key: the page shows its fingerprint and the ssh command.
    SessionRepo(store).agent_status(
        s.agent_id, session_id, state="approved", reason="", host_key=HOST_KEY,
        host_key_sha256="SHA256:abc123", approved_by="", now=time.time(),
    )  # fmt: skip
    shown = engineer.get(f"/remote-sessions/{session_id}").text
    assert "SHA256:abc123" in shown and f"HostKeyAlias=diag-session-{session_id}" in shown
    assert f"diag-session-{session_id} {HOST_KEY}" in shown
    assert tokens["engineer"] not in shown

    revoked = engineer.post(f"/remote-sessions/{session_id}/revoke", data={"csrf": token, "reason": "done"})
    assert revoked.status_code == 200 and "/revoke" not in revoked.text
    s = SessionRepo(store).get(Scope.everything(), session_id)
    assert (s.state, s.ended_by, s.end_reason) == ("revoked", "eng", "done")
    events = [a.event for a in SessionRepo(store).audit(Scope.everything(), session_id)]
    assert events[0] == "requested" and "approved" in events and events[-1] == "revoked"
    assert "revoked" in revoked.text.split('class="audit"')[1]


def test_deny_as_the_customer_admin_and_the_pages_in_chinese(site) -> None:
    store, tokens = site
    session_id = _session(store, tokens["case"])
    admin = signed_in(store, tokens["admin"])
    admin.cookies.set("diag_lang", "zh-CN")
    page = admin.get(f"/remote-sessions/{session_id}").text
    assert "远程会话" in page and "待批准" in page and "批准" in page
    denied = admin.post(
        f"/remote-sessions/{session_id}/deny", data={"csrf": csrf_of(page), "reason": "not now"}
    )
    assert denied.status_code == 200 and "已拒绝" in denied.text
    assert SessionRepo(store).get(Scope.everything(), session_id).state == "denied"
    assert admin.get("/remote-sessions", params={"state": "bogus"}).status_code == 400
    assert "已拒绝" in admin.get("/remote-sessions", params={"state": "denied"}).text


def test_a_service_manager_revokes_but_never_approves(site) -> None:
    store, tokens = site
    session_id = _session(store, tokens["case"])
    manager = signed_in(store, tokens["manager"])
    page = manager.get(f"/remote-sessions/{session_id}").text
    assert "/approve" not in page and f'action="/remote-sessions/{session_id}/revoke"' in page
    token = csrf_of(page)
    assert manager.post(f"/remote-sessions/{session_id}/approve", data={"csrf": token}).status_code == 403
    assert manager.post(f"/remote-sessions/{session_id}/deny", data={"csrf": token}).status_code == 403
    assert SessionRepo(store).get(Scope.everything(), session_id).state == "requested"
    assert manager.post(f"/remote-sessions/{session_id}/revoke", data={"csrf": token}).status_code == 200
    assert SessionRepo(store).get(Scope.everything(), session_id).ended_by == "boss"


def test_session_pages_need_a_session(site) -> None:
    store, _tokens = site
    anonymous = client_for(store)
    answer = anonymous.get("/remote-sessions", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


# --------------------------------------------------------------------------- both languages


def test_every_label_the_pages_use_exists_in_english_and_chinese() -> None:
    from importlib import resources

    from collector.store.case_states import ACTIONS
    from collector.store.cases import EVENT_KINDS
    from collector.store.desk_cases import DECISIONS
    from collector.store.sessions import MODES
    from collector.web.frame import web_catalogue
    from collector.web.remote import STATES

    en, zh = web_catalogue("en"), web_catalogue("zh-CN")
    assert set(en) == set(zh)
    templates = resources.files("collector.web").joinpath("templates")
    literal = {
        key
        for t in templates.iterdir()
        if t.name.endswith(".html")
        for key in re.findall(r'f\.t\("([a-zA-Z0-9_.-]+)"\s*[,)]', t.read_text("utf-8"))
    }
    dynamic = (
        {f"web.step.{a}" for a in ACTIONS if a != "ack"}
        | {f"web.session_state.{s}" for s in STATES}
        | {f"web.sessions.mode_{m}" for m in MODES}
        | {f"web.decision.{d}" for d in DECISIONS}
        | {f"web.event.{k}" for k in EVENT_KINDS}
        | {f"sev.{s}" for s in ("CRIT", "WARN", "INFO", "UNKNOWN")}
        | {"web.role.service_manager"}
    )
    assert {"web.desk.open_title", "web.sessions.approve", "web.desk.time_log"} <= literal
    missing = sorted(k for k in literal | dynamic if k not in en or k not in zh)
    assert not missing, missing
    assert all(en[k] != zh[k] for k in dynamic if k.startswith(("web.step.", "web.session_state.")))
