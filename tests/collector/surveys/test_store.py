"""The follow-up store on SQLite and PostgreSQL: survey links (hash only, single use,
expiry), callbacks (drawn once, results), and the counts of what is unanswered."""

from __future__ import annotations

import hashlib

import pytest

from collector.store import Store
from collector.store.cases import CaseRepo
from collector.store.errors import Conflict, NotFound, StoreError
from collector.store.queries import Scope
from collector.store.surveys import LinkRefused, NewSurvey, SurveyRepo
from tests.collector.surveys.helpers import T0, resolved_case

ALL = Scope.everything()
DAY = 86400.0


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def survey(token: str, expires: float = T0 + 14 * DAY) -> NewSurvey:
    return NewSurvey(digest(token), "wang@acme.example", "zh-CN", expires)


def test_follow_up_stores_the_hash_and_answers_once(store: Store) -> None:
    case_id = resolved_case(store)
    repo = SurveyRepo(store)
    survey_id = repo.follow_up(ALL, case_id, survey=survey("tok-1"), actor="li", now=T0 + 100)
    case = CaseRepo(store).get(ALL, case_id)
    assert case.state == "follow_up"
    assert [e.kind for e in case.events][-2:] == ["follow_up", "survey_sent"]
    found = repo.by_token(digest("tok-1"))
    assert found is not None and found.id == survey_id and found.state(T0 + 200) == "open"
    assert repo.by_token("tok-1") is None  # the token itself is not what is stored
    assert repo.by_token(digest("tok-2")) is None

    answered = repo.answer(
        digest("tok-1"), ratings={"overall": 5, "attitude": 4}, comment=" fast ", now=T0 + 300
    )
    assert (answered.ratings, answered.comment, answered.state(T0 + 400)) == (
        {"overall": 5, "attitude": 4},
        "fast",
        "answered",
    )
    events = CaseRepo(store).get(ALL, case_id).events
    assert events[-1].kind == "survey_answered" and events[-1].data["ratings"] == {
        "overall": 5,
        "attitude": 4,
    }
    with pytest.raises(LinkRefused) as used:
        repo.answer(digest("tok-1"), ratings={"overall": 1}, comment="changed my mind", now=T0 + 500)
    assert used.value.reason == "used"
    again = repo.by_token(digest("tok-1"))
    assert again is not None and again.ratings == {"overall": 5, "attitude": 4}  # nothing overwritten


def test_expired_and_unknown_links_store_nothing(store: Store) -> None:
    case_id = resolved_case(store)
    repo = SurveyRepo(store)
    repo.follow_up(ALL, case_id, survey=survey("tok-e", expires=T0 + DAY), actor="li", now=T0 + 100)
    before = len(CaseRepo(store).get(ALL, case_id).events)
    with pytest.raises(LinkRefused) as expired:
        repo.answer(digest("tok-e"), ratings={"overall": 3}, comment="", now=T0 + DAY)
    assert expired.value.reason == "expired"
    with pytest.raises(LinkRefused) as unknown:
        repo.answer(digest("forged"), ratings={"overall": 3}, comment="", now=T0 + 200)
    assert unknown.value.reason == "unknown"
    with pytest.raises(StoreError, match="ratings"):
        repo.answer(digest("tok-e"), ratings={"overall": 6}, comment="", now=T0 + 200)
    assert len(CaseRepo(store).get(ALL, case_id).events) == before
    stored = repo.by_token(digest("tok-e"))
    assert stored is not None and stored.answered_at is None and stored.state(T0 + DAY) == "expired"


def test_follow_up_needs_a_resolved_case_in_scope(store: Store) -> None:
    case_id = resolved_case(store)
    resolved_case(store, "globex")
    repo = SurveyRepo(store)
    with pytest.raises(NotFound):
        repo.follow_up(Scope.of("globex"), case_id, survey=survey("x"), actor="li", now=T0 + 100)
    repo.follow_up(ALL, case_id, survey=None, not_sent_reason="no e-mail", actor="li", now=T0 + 100)
    assert CaseRepo(store).get(ALL, case_id).events[-1].data == {"reason": "no e-mail"}
    with pytest.raises(Conflict, match="follow-up is allowed only from resolved"):
        repo.follow_up(ALL, case_id, survey=survey("y"), actor="li", now=T0 + 200)
    assert repo.by_token(digest("y")) is None  # the refused step wrote no survey


def test_lists_are_scoped_and_filtered_by_state(store: Store) -> None:
    repo = SurveyRepo(store)
    acme = resolved_case(store)
    globex = resolved_case(store, "globex")
    repo.follow_up(ALL, acme, survey=survey("a", expires=T0 + DAY), actor="li", now=T0 + 100)
    gid = repo.follow_up(ALL, globex, survey=survey("g"), actor="li", now=T0 + 200)
    assert gid is not None
    assert [s.case_id for s in repo.list(ALL, now=T0 + 300)] == [globex, acme]
    assert [s.case_id for s in repo.list(Scope.of("acme"), now=T0 + 300)] == [acme]
    assert [s.case_id for s in repo.list(ALL, now=T0 + 2 * DAY, state="expired")] == [acme]
    assert [s.case_id for s in repo.list(ALL, now=T0 + 2 * DAY, state="open")] == [globex]
    with pytest.raises(NotFound):
        repo.get(Scope.of("acme"), gid)
    assert repo.get(Scope.of("globex"), gid).contact == "wang@acme.example"


def test_callbacks_are_drawn_once_and_unanswered_ones_counted(store: Store) -> None:
    repo, cases = SurveyRepo(store), CaseRepo(store)
    first, second = resolved_case(store), resolved_case(store, at=T0 + 10)
    with pytest.raises(Conflict, match="closed"):
        repo.draw_callback(ALL, first, selected=True, now=T0 + 100)
    for case_id in (first, second):
        cases.close(ALL, case_id, actor="li", now=T0 + 100)
    assert repo.draw_callback(ALL, first, selected=True, now=T0 + 200).selected
    assert repo.draw_callback(ALL, first, selected=False, now=T0 + 300).selected  # the first draw stays
    assert not repo.draw_callback(ALL, second, selected=False, now=T0 + 200).selected
    assert repo.callbacks_due(ALL) == (first,)
    assert repo.callbacks_due(Scope.of("globex")) == ()

    with pytest.raises(StoreError, match="satisfied"):
        repo.record_callback(ALL, first, result="reached", satisfied=None, note="", actor="li", now=T0 + 400)
    done = repo.record_callback(
        ALL, first, result="no_answer", satisfied=None, note="rang twice", actor="li", now=T0 + 400
    )
    assert (done.result, done.recorded_by) == ("no_answer", "li")
    counts = repo.counts(ALL, now=T0 + 500)
    assert (counts.callbacks_selected, counts.callbacks_due, counts.callbacks_no_answer) == (1, 0, 1)
    repo.record_callback(ALL, first, result="reached", satisfied=4, note="happy", actor="li", now=T0 + 600)
    counts = repo.counts(ALL, now=T0 + 700)
    assert (counts.callbacks_reached, counts.callbacks_no_answer) == (1, 0)
    assert [e.kind for e in cases.get(ALL, first).events][-3:] == ["callback_drawn", "callback", "callback"]


def test_survey_counts_keep_the_unanswered(store: Store) -> None:
    repo = SurveyRepo(store)
    ids = [resolved_case(store, at=T0 + i) for i in range(4)]
    for i, case_id in enumerate(ids):
        repo.follow_up(
            ALL, case_id, survey=survey(f"t{i}", expires=T0 + (i + 1) * DAY), actor="li", now=T0 + 100
        )
    repo.answer(digest("t3"), ratings={"overall": 2}, comment="", now=T0 + 200)
    counts = repo.counts(ALL, now=T0 + 2.5 * DAY)  # t0 and t1 expired unanswered, t2 open, t3 answered
    assert (counts.surveys_sent, counts.surveys_answered, counts.surveys_open, counts.surveys_expired) == (
        4,
        1,
        1,
        2,
    )
    assert repo.counts(Scope.of("globex"), now=T0).surveys_sent == 0
