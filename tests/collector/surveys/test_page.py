"""The survey page through HTTP on a real store (SQLite and PostgreSQL): resolving a case
sends a link; the page (no script, no external reference) takes one answer; expired,
reused, forged and another case's links are refused with nothing stored; guessing is
rate-limited; wording in English and Simplified Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from collector.desk.followup import hash_token
from collector.http import survey_page
from collector.store import Store
from collector.store.cases import CaseRepo
from collector.store.queries import Scope
from collector.store.surveys import NewSurvey, SurveyRepo
from tests.collector.people import auth
from tests.collector.surveys.app import Desk, make_desk, nonce_in, survey_links, token_of
from tests.collector.surveys.helpers import CONTACT

ALL = Scope.everything()
QUESTIONS = ("response_speed", "professional_skill", "attitude", "problem_solved", "overall")


@pytest.fixture(autouse=True)
def fresh_throttle() -> Iterator[None]:
    survey_page.THROTTLE._failures.clear()
    yield
    survey_page.THROTTLE._failures.clear()


@pytest.fixture
def desk(store: Store) -> Desk:
    return make_desk(store)


def opened(desk: Desk, customer: str = "acme", contact: str | None = CONTACT) -> str:
    body = {"customer": customer, "type": "consultation", "channel": "hotline", "title": "报表很慢 <b>"}
    if contact is not None:
        body["contact"] = contact
    response = desk.client.post("/api/v1/cases", headers=auth(desk.tokens["engineer"]), json=body)
    assert response.status_code == 201, response.text
    case_id: str = response.json()["id"]
    return case_id


def resolved(desk: Desk, customer: str = "acme", contact: str | None = CONTACT) -> tuple[str, str | None]:
    case_id = opened(desk, customer, contact)
    response = desk.client.post(f"/api/v1/cases/{case_id}/resolve", headers=auth(desk.tokens["engineer"]))
    assert response.status_code == 200, response.text
    return case_id, survey_links(desk.store).get(case_id)


def form(nonce: str, **ratings: int) -> dict[str, str]:
    values = {"nonce": nonce, "comment": "工程师很专业"}
    values.update({f"q_{k}": str(v) for k, v in ratings.items()})
    return values


def assert_self_contained(html: str) -> None:
    """No script of any kind and nothing fetched from elsewhere."""
    lower = html.lower()
    assert "<script" not in lower and "javascript:" not in lower
    assert not re.search(r"\son[a-z]+\s*=", lower), "no inline event handlers"
    assert not re.search(r"(src|href|action)\s*=\s*\"(https?:)?//", lower), "no external reference"
    assert "<link" not in lower and "@import" not in lower and "url(" not in lower
    assert "<iframe" not in lower and "<object" not in lower and "<embed" not in lower


@pytest.fixture
def acme_company(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    store.enroll_agent("globex", "erp1", "globex-erp1")


@pytest.mark.usefixtures("acme_company")
def test_resolve_sends_a_link_and_the_page_takes_one_answer(desk: Desk) -> None:
    case_id, link = resolved(desk)
    assert link is not None
    case = CaseRepo(desk.store).get(ALL, case_id)
    assert case.state == "follow_up" and [e.kind for e in case.events][-3:] == [
        "resolved",
        "follow_up",
        "survey_sent",
    ]
    token = token_of(link)
    assert token not in str(case.events) and token not in str(SurveyRepo(desk.store).list(ALL, now=0))

    page = desk.client.get(f"/survey/{token}")
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert '<html lang="zh-CN">' in page.text and "服务质量评价表" in page.text and "响应速度" in page.text
    assert "报表很慢 &lt;b&gt;" in page.text  # escaped
    assert_self_contained(page.text)
    english = desk.client.get(f"/survey/{token}?lang=en")
    assert "Speed of response" in english.text and '<html lang="en">' in english.text
    assert_self_contained(english.text)

    missing = desk.client.post(f"/survey/{token}", data=form(nonce_in(page.text), overall=5))
    assert missing.status_code == 422 and "请为每个问题打 1 至 5 分" in missing.text
    assert 'value="5" required checked' in missing.text  # what was chosen stays chosen
    assert SurveyRepo(desk.store).by_token(hash_token(token)).answered_at is None  # type: ignore[union-attr]

    ratings = dict(zip(QUESTIONS, (5, 4, 5, 3, 4), strict=True))
    done = desk.client.post(f"/survey/{token}", data=form(nonce_in(missing.text), **ratings))
    assert done.status_code == 200 and "感谢您的评价" in done.text
    assert_self_contained(done.text)
    events = CaseRepo(desk.store).get(ALL, case_id).events
    assert events[-1].kind == "survey_answered" and events[-1].data["ratings"] == ratings
    assert events[-1].data["comment"] == "工程师很专业"

    again = desk.client.post(f"/survey/{token}", data=form(nonce_in(page.text), **{k: 1 for k in QUESTIONS}))
    assert again.status_code == 410 and "已提交过" in again.text
    assert desk.client.get(f"/survey/{token}?lang=en").status_code == 410
    assert SurveyRepo(desk.store).by_token(hash_token(token)).ratings == ratings  # type: ignore[union-attr]


@pytest.mark.usefixtures("acme_company")
def test_bad_links_are_refused_and_store_nothing(desk: Desk) -> None:
    repo = SurveyRepo(desk.store)
    a_case, a_link = resolved(desk)
    b_case, b_link = resolved(desk)
    assert a_link and b_link
    a, b = token_of(a_link), token_of(b_link)
    every = {k: 3 for k in QUESTIONS}

    forged = desk.client.get("/survey/" + "A" * 43)
    assert forged.status_code == 404 and "该评价链接无效" not in forged.text and "not valid" in forged.text
    zh = desk.client.get("/survey/nope", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert zh.status_code == 404 and "该评价链接无效" in zh.text
    assert desk.client.post("/survey/" + "A" * 43, data=form("1.x", **every)).status_code == 404

    # another case's link: the nonce of a's page does not open b
    a_page = desk.client.get(f"/survey/{a}")
    crossed = desk.client.post(f"/survey/{b}", data=form(nonce_in(a_page.text), **every))
    assert crossed.status_code == 403 and "该表单已失效" in crossed.text
    no_nonce = desk.client.post(f"/survey/{b}", data={f"q_{k}": "3" for k in QUESTIONS})
    assert no_nonce.status_code == 403
    stale = desk.client.post(f"/survey/{b}", data=form("1000.00000000000000000000000000000000", **every))
    assert stale.status_code == 403
    out_of_range = desk.client.post(
        f"/survey/{a}", data=form(nonce_in(a_page.text), **{k: 9 for k in QUESTIONS})
    )
    assert out_of_range.status_code == 422
    junk = desk.client.post(
        f"/survey/{a}", content=b"\xff\xfe", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert junk.status_code == 400

    # an expired link (sent long ago)
    c_case, _ = resolved(desk, contact=None)  # no e-mail address: no survey, and the timeline says why
    assert CaseRepo(desk.store).get(ALL, c_case).events[-1].kind == "survey_not_sent"
    expired_case = opened(desk)
    CaseRepo(desk.store).resolve(ALL, expired_case, actor="li", now=1_000_000.0)
    repo.follow_up(
        ALL, expired_case, survey=NewSurvey(hash_token("old-token"), "wang@acme.example", "en", 1_000_100.0),
        actor="li", now=1_000_050.0,
    )  # fmt: skip
    gone = desk.client.get("/survey/old-token")
    assert gone.status_code == 410 and "has expired" in gone.text
    for refused in (gone, forged, zh, crossed):
        assert_self_contained(refused.text)
        assert refused.headers["referrer-policy"] == "no-referrer"
    gone_post = desk.client.post("/survey/old-token", data=form("1.x", **every))
    assert gone_post.status_code == 410

    assert all(s.answered_at is None for s in repo.list(ALL, now=0))
    for case_id in (a_case, b_case, expired_case):
        assert "survey_answered" not in [e.kind for e in CaseRepo(desk.store).get(ALL, case_id).events]


@pytest.mark.usefixtures("acme_company")
def test_guessing_is_rate_limited(desk: Desk) -> None:
    _, link = resolved(desk)
    assert link
    for n in range(survey_page.MAX_FAILURES):
        assert desk.client.get(f"/survey/guess-{n}").status_code == 404
    blocked = desk.client.get(f"/survey/{token_of(link)}")  # even a good link, from that address, for a while
    assert blocked.status_code == 429 and "Too many attempts" in blocked.text
    assert desk.client.post(f"/survey/{token_of(link)}", data={}).status_code == 429


def test_without_the_follow_up_step_resolving_stays_resolved(store: Store) -> None:
    from fastapi.testclient import TestClient

    from collector.http.app import create_app

    store.enroll_agent("acme", "db1", "acme-db1")
    plain = TestClient(create_app(store))
    token = store.create_api_token("li", "engineer")
    case = plain.post(
        "/api/v1/cases", headers=auth(token),
        json={"customer": "acme", "type": "consultation", "channel": "hotline", "title": "t",
              "contact": CONTACT},
    ).json()  # fmt: skip
    assert (
        plain.post(f"/api/v1/cases/{case['id']}/resolve", headers=auth(token)).json()["state"] == "resolved"
    )
    assert plain.get("/survey/anything").status_code == 404


@pytest.mark.usefixtures("acme_company")
def test_the_manual_follow_up_step_sends_the_survey_too(desk: Desk) -> None:
    case_id = opened(desk)
    CaseRepo(desk.store).resolve(ALL, case_id, actor="detection", now=1_000.0)  # resolved outside the API
    assert survey_links(desk.store).get(case_id) is None
    viewer = desk.client.post(f"/api/v1/cases/{case_id}/follow-up", headers=auth(desk.tokens["acme viewer"]))
    assert viewer.status_code == 403 and survey_links(desk.store).get(case_id) is None
    step = desk.client.post(f"/api/v1/cases/{case_id}/follow-up", headers=auth(desk.tokens["engineer"]))
    assert step.status_code == 200 and step.json()["state"] == "follow_up"
    link = survey_links(desk.store)[case_id]
    page = desk.client.get(f"/survey/{token_of(link)}")
    answer = {**form(nonce_in(page.text), **{k: 4 for k in QUESTIONS}), "comment": "ok\x1b[31m\x07\nthanks"}
    assert desk.client.post(f"/survey/{token_of(link)}", data=answer).status_code == 200
    stored = SurveyRepo(desk.store).by_token(hash_token(token_of(link)))
    assert stored is not None and stored.comment == "ok[31m\nthanks"  # control characters dropped
    again = desk.client.post(f"/api/v1/cases/{case_id}/follow-up", headers=auth(desk.tokens["engineer"]))
    assert again.status_code == 409 and len(SurveyRepo(desk.store).list(ALL, now=0, case_id=case_id)) == 1
