"""The follow-up API on a real store (SQLite and PostgreSQL): surveys and callbacks for each
role and for another customer's people; the callback draw over many cases; the manager's
overview and /metrics counting what is unanswered."""

from __future__ import annotations

import re
from typing import Any

import pytest

from collector.desk.followup import SurveyConfig, drawn_for_callback
from collector.store import Store
from collector.store.queries import Scope
from collector.store.surveys import SurveyRepo
from tests.collector.people import auth
from tests.collector.surveys.app import Desk, make_desk, nonce_in, token_of
from tests.collector.surveys.test_page import QUESTIONS, form, resolved

ALL = Scope.everything()
ROLES = ("engineer", "manager", "acme admin", "acme viewer", "globex admin", "globex viewer")


@pytest.fixture
def desk(store: Store) -> Desk:
    store.enroll_agent("acme", "db1", "acme-db1")
    store.enroll_agent("globex", "erp1", "globex-erp1")
    return make_desk(store, SurveyConfig(callback_fraction=1.0))


def get(desk: Desk, role: str, path: str) -> tuple[int, Any]:
    response = desk.client.get(path, headers=auth(desk.tokens[role]))
    return response.status_code, response.json()


def test_surveys_are_listed_within_each_callers_customer(desk: Desk) -> None:
    acme_case, link = resolved(desk)
    globex_case, _ = resolved(desk, "globex")
    assert link
    page = desk.client.get(f"/survey/{token_of(link)}")
    desk.client.post(f"/survey/{token_of(link)}", data=form(nonce_in(page.text), **{k: 4 for k in QUESTIONS}))
    (acme_survey,) = SurveyRepo(desk.store).list(Scope.of("acme"), now=0)
    (globex_survey,) = SurveyRepo(desk.store).list(Scope.of("globex"), now=0)

    seen = {role: sorted(s["case_id"] for s in get(desk, role, "/api/v1/surveys")[1]) for role in ROLES}
    assert seen == {
        "engineer": sorted([acme_case, globex_case]),
        "manager": sorted([acme_case, globex_case]),
        "acme admin": [acme_case],
        "acme viewer": [acme_case],
        "globex admin": [globex_case],
        "globex viewer": [globex_case],
    }
    status, one = get(desk, "acme viewer", f"/api/v1/surveys/{acme_survey.id}")
    assert status == 200 and one["state"] == "answered" and one["mean"] == 4.0
    assert one["ratings"] == {k: 4 for k in QUESTIONS}
    for role in ("globex admin", "globex viewer"):
        assert get(desk, role, f"/api/v1/surveys/{acme_survey.id}")[0] == 404
        assert get(desk, role, "/api/v1/surveys?customer=acme")[0] == 403
    assert get(desk, "acme admin", f"/api/v1/surveys/{globex_survey.id}")[0] == 404
    _, answered = get(desk, "engineer", "/api/v1/surveys?state=answered")
    assert [s["case_id"] for s in answered] == [acme_case]
    _, open_ = get(desk, "manager", "/api/v1/surveys?state=open&customer=globex")
    assert [s["case_id"] for s in open_] == [globex_case]
    assert get(desk, "engineer", "/api/v1/surveys?state=lost")[0] == 422
    assert get(desk, "engineer", "/api/v1/surveys?bogus=1")[0] == 422


def test_callbacks_are_recorded_by_the_vendor_on_its_customers_cases(desk: Desk) -> None:
    acme_case, _ = resolved(desk)
    engineer = auth(desk.tokens["engineer"])
    assert desk.client.post(f"/api/v1/cases/{acme_case}/close", headers=engineer).status_code == 200
    body = {"result": "reached", "satisfied": 5, "note": "very happy"}
    for role, expected in (
        ("globex admin", 404),
        ("globex viewer", 404),
        ("acme admin", 403),
        ("acme viewer", 403),
    ):
        response = desk.client.post(
            f"/api/v1/cases/{acme_case}/callback", headers=auth(desk.tokens[role]), json=body
        )
        assert response.status_code == expected, (role, response.text)
    assert SurveyRepo(desk.store).callback(ALL, acme_case).result is None  # nothing recorded by them
    assert get(desk, "acme viewer", f"/api/v1/cases/{acme_case}/callback")[1]["selected"] is True
    assert get(desk, "globex viewer", f"/api/v1/cases/{acme_case}/callback")[0] == 404

    bad = desk.client.post(
        f"/api/v1/cases/{acme_case}/callback", headers=engineer, json={"result": "reached"}
    )
    assert bad.status_code == 422 and "satisfied" in bad.text
    bad = desk.client.post(f"/api/v1/cases/{acme_case}/callback", headers=engineer, json={"result": "maybe"})
    assert bad.status_code == 422 and "result" in bad.text
    manager = auth(desk.tokens["manager"])
    done = desk.client.post(f"/api/v1/cases/{acme_case}/callback", headers=manager, json=body)
    assert done.status_code == 200 and done.json()["recorded_by"] == "mgr" and done.json()["satisfied"] == 5

    new_case, _ = resolved(desk, "globex")
    desk.client.post(f"/api/v1/cases/{new_case}/reopen", headers=engineer)
    early = desk.client.post(f"/api/v1/cases/{new_case}/callback", headers=engineer, json=body)
    assert early.status_code == 409 and "follow_up or closed" in early.text


def test_the_callback_draw_takes_the_configured_fraction_and_never_redraws() -> None:
    ids = [f"C-acme-{n}" for n in range(1, 5001)]
    secret = b"a-collector-secret-0123456789"
    for fraction in (0.05, 0.2, 0.5):
        drawn = [i for i in ids if drawn_for_callback(i, secret, fraction)]
        assert abs(len(drawn) / len(ids) - fraction) < 0.02, (fraction, len(drawn))
        assert drawn == [i for i in ids if drawn_for_callback(i, secret, fraction)]  # re-run: same cases
    smaller = {i for i in ids if drawn_for_callback(i, secret, 0.05)}
    assert smaller <= {i for i in ids if drawn_for_callback(i, secret, 0.2)}  # a larger fraction adds cases
    other = {i for i in ids if drawn_for_callback(i, b"another-secret-0123456789", 0.2)}
    assert other != {
        i for i in ids if drawn_for_callback(i, secret, 0.2)
    }  # the secret decides, not the id alone


def test_closing_draws_each_case_once_through_the_api(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    desk = make_desk(store, SurveyConfig(callback_fraction=0.5))
    engineer = auth(desk.tokens["engineer"])
    cases = [resolved(desk)[0] for _ in range(12)]
    for case_id in cases:
        assert desk.client.post(f"/api/v1/cases/{case_id}/close", headers=engineer).status_code == 200
    expected = [c for c in cases if drawn_for_callback(c, desk.followup.secret, 0.5)]
    repo = SurveyRepo(store)
    assert list(repo.callbacks_due(ALL)) == expected
    # reopened and closed again: the first draw stands
    desk.client.post(f"/api/v1/cases/{cases[0]}/reopen", headers=engineer)
    desk.client.post(f"/api/v1/cases/{cases[0]}/resolve", headers=engineer)
    assert desk.client.post(f"/api/v1/cases/{cases[0]}/close", headers=engineer).status_code == 200
    assert list(repo.callbacks_due(ALL)) == expected


def test_overview_and_metrics_count_what_is_unanswered(desk: Desk) -> None:
    answered_case, link = resolved(desk)
    open_case, _ = resolved(desk)
    globex_case, _ = resolved(desk, "globex")
    assert link
    page = desk.client.get(f"/survey/{token_of(link)}")
    desk.client.post(f"/survey/{token_of(link)}", data=form(nonce_in(page.text), **{k: 2 for k in QUESTIONS}))
    engineer = auth(desk.tokens["engineer"])
    for case_id in (answered_case, globex_case):
        desk.client.post(f"/api/v1/cases/{case_id}/close", headers=engineer)  # fraction 1: both drawn

    status, view = get(desk, "manager", "/api/v1/desk/overview")
    assert status == 200
    assert (view["surveys_open"], view["surveys_expired_unanswered"]) == (2, 0)
    assert view["callbacks_due"] == [answered_case, globex_case]
    _, acme = get(desk, "manager", "/api/v1/desk/overview?customer=acme")
    assert (acme["surveys_open"], acme["callbacks_due"]) == (1, [answered_case])
    assert get(desk, "acme admin", "/api/v1/desk/overview")[0] == 403

    desk.client.post(f"/api/v1/cases/{globex_case}/callback", headers=engineer, json={"result": "no_answer"})
    metrics = desk.client.get("/metrics").text

    def sample(name: str, state: str) -> float:
        match = re.search(rf'^{name}\{{state="{state}"\}} (\S+)$', metrics, re.M)
        assert match, (name, state)
        return float(match.group(1))

    assert (
        sample("diag_surveys", "open"),
        sample("diag_surveys", "answered"),
        sample("diag_surveys", "expired"),
    ) == (
        2.0,
        1.0,
        0.0,
    )
    assert (sample("diag_callbacks", "due"), sample("diag_callbacks", "no_answer")) == (1.0, 1.0)
    assert open_case not in metrics  # counts only: no case ids on /metrics
