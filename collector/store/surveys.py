"""The follow-up step's store (issue 14): one-time survey links and callbacks.

A survey link's token is never stored: only its SHA-256 (``token_hash``), computed by the
caller. A link is bound to one case and one contact, expires, and is answered once: the
answer is a single conditional UPDATE (``answered_at IS NULL AND expires_at > now``), so
two concurrent answers cannot both win, and nothing is written for a refused one.

Reads for people take a :class:`~collector.store.queries.Scope` and answer NotFound for a
case or survey the scope may not see, exactly as for one that does not exist. The public
page's reads go by token hash alone (the token is the visitor's only credential).

Timeline (``case_events``): ``survey_sent`` (``survey_id``, ``expires_at``; the contact's
address is not copied there), ``survey_not_sent`` (``reason``), ``survey_answered``
(``survey_id``, ``ratings``, ``comment``), ``callback_drawn`` (``selected``), ``callback``
(``result``, ``satisfied``, ``note``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from collector.store.case_states import record_event, transition
from collector.store.cases import MAX_TEXT, scoped_case
from collector.store.engine import SQLITE_IMMEDIATE
from collector.store.errors import Conflict, NotFound, StoreError
from collector.store.queries import Scope
from collector.store.schema import customers
from collector.store.schema_cases import cases
from collector.store.schema_surveys import case_callbacks, case_surveys

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = [
    "CALLBACK_RESULTS",
    "SURVEY_STATES",
    "CallbackRecord",
    "FollowUpCounts",
    "LinkRefused",
    "NewSurvey",
    "SurveyRecord",
    "SurveyRepo",
]

SURVEY_STATES = ("open", "answered", "expired")
"""A survey is open (sent, not answered, not expired), answered, or expired unanswered."""
CALLBACK_RESULTS = ("reached", "no_answer")
MAX_COMMENT = 4000


class LinkRefused(StoreError):
    """A survey link that cannot be answered: ``reason`` is ``unknown``, ``expired`` or ``used``."""

    def __init__(self, reason: Literal["unknown", "expired", "used"]) -> None:
        super().__init__(f"survey link {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NewSurvey:
    """A survey link about to be sent (its token's hash, never the token)."""

    token_hash: str
    contact: str
    language: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class SurveyRecord:
    """A survey link as stored (without its hash)."""

    id: int
    case_id: str
    customer: str
    case_title: str
    contact: str
    language: str
    created_at: float
    expires_at: float
    answered_at: float | None
    ratings: dict[str, int] | None
    comment: str | None

    def state(self, now: float) -> Literal["open", "answered", "expired"]:
        """``answered``, ``expired`` (unanswered past its expiry) or ``open``."""
        if self.answered_at is not None:
            return "answered"
        return "expired" if now >= self.expires_at else "open"


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """A closed case's callback draw and, once recorded, its result."""

    case_id: str
    customer: str
    selected: bool
    drawn_at: float
    result: str | None
    satisfied: int | None
    note: str | None
    recorded_by: str | None
    recorded_at: float | None


@dataclass(frozen=True, slots=True)
class FollowUpCounts:
    """Surveys and callbacks, counted (nothing unanswered is lost)."""

    surveys_sent: int
    surveys_answered: int
    surveys_open: int
    surveys_expired: int
    """Expired without an answer."""
    callbacks_selected: int
    callbacks_due: int
    """Drawn and no result recorded yet."""
    callbacks_reached: int
    callbacks_no_answer: int


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise StoreError(message)


_JOINED = case_surveys.join(cases, cases.c.id == case_surveys.c.case_id).join(
    customers, customers.c.id == cases.c.customer_id
)
_SURVEY_COLUMNS = (
    case_surveys.c.id, case_surveys.c.case_id, customers.c.slug, cases.c.title, case_surveys.c.contact,
    case_surveys.c.language, case_surveys.c.created_at, case_surveys.c.expires_at,
    case_surveys.c.answered_at, case_surveys.c.ratings, case_surveys.c.comment,
)  # fmt: skip


def _survey(row: Any) -> SurveyRecord:
    ratings = row.ratings
    return SurveyRecord(
        int(row.id), row.case_id, row.slug, row.title, row.contact, row.language, float(row.created_at),
        float(row.expires_at), None if row.answered_at is None else float(row.answered_at),
        None if ratings is None else {str(k): int(v) for k, v in dict(ratings).items()}, row.comment,
    )  # fmt: skip


class SurveyRepo:
    """Surveys and callbacks in ``store``'s database."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._write_engine = store.engine.execution_options(**{SQLITE_IMMEDIATE: True})

    # ------------------------------------------------------------------ follow-up

    def follow_up(
        self,
        scope: Scope,
        case_id: str,
        *,
        survey: NewSurvey | None,
        not_sent_reason: str = "",
        actor: str | None,
        now: float,
    ) -> int | None:
        """resolved → follow_up and, in the same transaction, the survey link's row (or a
        ``survey_not_sent`` event naming why there is none). Returns the survey's id."""
        if survey is not None:
            _check(len(survey.token_hash) == 64, "token_hash: expected a SHA-256 hex digest")
            _check(survey.language in ("en", "zh-CN"), "language: expected en or zh-CN")
            _check(survey.expires_at > now, "expires_at: must be in the future")
        with self._write_engine.begin() as conn:
            state = self._case(conn, scope, case_id)["state"]
            transition(conn, case_id, state, "follow-up", actor=actor, now=now, text="follow-up started")
            if survey is None:
                record_event(
                    conn, case_id, now, "survey_not_sent", actor,
                    f"no satisfaction survey sent: {not_sent_reason}", {"reason": not_sent_reason},
                )  # fmt: skip
                return None
            key = conn.execute(
                case_surveys.insert().values(
                    case_id=case_id, token_hash=survey.token_hash, contact=survey.contact[:320],
                    language=survey.language, created_at=now, expires_at=survey.expires_at,
                )
            ).inserted_primary_key  # fmt: skip
            survey_id = int(key[0]) if key else 0
            record_event(
                conn, case_id, now, "survey_sent", actor, "satisfaction survey sent to the case's contact",
                {"survey_id": survey_id, "expires_at": survey.expires_at},
            )  # fmt: skip
        return survey_id

    # ------------------------------------------------------------------ the public link

    def by_token(self, token_hash: str) -> SurveyRecord | None:
        """The survey whose token hashes to ``token_hash`` (None: no such link)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(*_SURVEY_COLUMNS)
                .select_from(_JOINED)
                .where(case_surveys.c.token_hash == token_hash)
            ).first()
        return None if row is None else _survey(row)

    def answer(
        self, token_hash: str, *, ratings: Mapping[str, int], comment: str, now: float
    ) -> SurveyRecord:
        """Store the answer of the link ``token_hash`` once; LinkRefused (``unknown``,
        ``expired``, ``used``) and nothing written otherwise."""
        _check(bool(ratings), "ratings: answer at least one question")
        _check(all(1 <= int(v) <= 5 for v in ratings.values()), "ratings: expected 1 to 5")
        answer = {str(k)[:64]: int(v) for k, v in ratings.items()}
        comment = comment.strip()[:MAX_COMMENT]
        with self._write_engine.begin() as conn:
            row = conn.execute(
                sa.select(case_surveys.c.id, case_surveys.c.case_id, case_surveys.c.answered_at,
                          case_surveys.c.expires_at).where(case_surveys.c.token_hash == token_hash)
            ).first()  # fmt: skip
            if row is None:
                raise LinkRefused("unknown")
            done = conn.execute(
                case_surveys.update()
                .where(
                    case_surveys.c.id == row.id,
                    case_surveys.c.answered_at.is_(None),
                    case_surveys.c.expires_at > now,
                )
                .values(answered_at=now, ratings=answer, comment=comment or None)
            ).rowcount
            if done != 1:
                raise LinkRefused("used" if row.answered_at is not None else "expired")
            mean = sum(answer.values()) / len(answer)
            record_event(
                conn, row.case_id, now, "survey_answered", None,
                f"satisfaction survey answered: {mean:.1f}/5" + (f": {comment}" if comment else ""),
                {"survey_id": int(row.id), "ratings": answer, "comment": comment},
            )  # fmt: skip
            conn.execute(cases.update().where(cases.c.id == row.case_id).values(updated_at=now))
        found = self.by_token(token_hash)
        assert found is not None
        return found

    # ------------------------------------------------------------------ people's reads

    def list(
        self,
        scope: Scope,
        *,
        now: float,
        customer: str | None = None,
        state: str | None = None,
        case_id: str | None = None,
        limit: int = 100,
    ) -> list[SurveyRecord]:
        """Surveys the scope may see, newest first, optionally of one state, customer or case."""
        where: list[sa.ColumnElement[bool]] = [scope.where()]
        if customer is not None:
            where.append(customers.c.slug == customer)
        if case_id is not None:
            where.append(case_surveys.c.case_id == case_id)
        if state == "answered":
            where.append(case_surveys.c.answered_at.is_not(None))
        elif state == "open":
            where += [case_surveys.c.answered_at.is_(None), case_surveys.c.expires_at > now]
        elif state == "expired":
            where += [case_surveys.c.answered_at.is_(None), case_surveys.c.expires_at <= now]
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(*_SURVEY_COLUMNS)
                .select_from(_JOINED)
                .where(*where)
                .order_by(case_surveys.c.created_at.desc(), case_surveys.c.id.desc())
                .limit(limit)
            ).all()
        return [_survey(r) for r in rows]

    def get(self, scope: Scope, survey_id: int) -> SurveyRecord:
        """One survey; NotFound when it does not exist or the scope may not see it."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(*_SURVEY_COLUMNS)
                .select_from(_JOINED)
                .where(case_surveys.c.id == survey_id, scope.where())
            ).first()
        if row is None:
            raise NotFound(f"no survey {survey_id}")
        return _survey(row)

    # ------------------------------------------------------------------ callbacks

    def draw_callback(self, scope: Scope, case_id: str, *, selected: bool, now: float) -> CallbackRecord:
        """Record the callback draw of a closed case once: a later draw keeps the first."""
        with self._write_engine.begin() as conn:
            row = self._case(conn, scope, case_id)
            if row["state"] != "closed":
                raise Conflict(f"case {case_id} is {row['state']}: callbacks are drawn from closed cases")
            exists = conn.execute(
                sa.select(case_callbacks.c.case_id).where(case_callbacks.c.case_id == case_id)
            ).first()
            if exists is None:
                conn.execute(case_callbacks.insert().values(case_id=case_id, selected=selected, drawn_at=now))
                record_event(
                    conn, case_id, now, "callback_drawn", None,
                    "drawn for a callback" if selected else "not drawn for a callback",
                    {"selected": selected},
                )  # fmt: skip
        return self.callback(scope, case_id)

    def record_callback(
        self,
        scope: Scope,
        case_id: str,
        *,
        result: str,
        satisfied: int | None,
        note: str,
        actor: str,
        now: float,
    ) -> CallbackRecord:
        """The engineer's callback (回访) on a case in follow-up or closed: ``reached`` (with
        the customer's satisfaction 1..5) or ``no_answer``; a later call replaces the result."""
        _check(result in CALLBACK_RESULTS, f"result: expected one of {', '.join(CALLBACK_RESULTS)}")
        if result == "reached":
            _check(satisfied is not None, "satisfied: a reached callback records satisfaction 1 to 5")
        _check(satisfied is None or 1 <= satisfied <= 5, "satisfied: expected 1 to 5")
        note = note.strip()[:MAX_TEXT]
        with self._write_engine.begin() as conn:
            row = self._case(conn, scope, case_id)
            if row["state"] not in ("follow_up", "closed"):
                raise Conflict(
                    f"case {case_id} is {row['state']}: a callback is recorded in follow_up or closed"
                )
            values = {
                "result": result, "satisfied": satisfied, "note": note or None, "recorded_by": actor,
                "recorded_at": now,
            }  # fmt: skip
            changed = conn.execute(
                case_callbacks.update().where(case_callbacks.c.case_id == case_id).values(**values)
            ).rowcount
            if changed == 0:  # a callback nobody drew (the engineer called anyway)
                conn.execute(
                    case_callbacks.insert().values(case_id=case_id, selected=False, drawn_at=now, **values)
                )
            text = f"callback: {result.replace('_', ' ')}" + (
                f", satisfied {satisfied}/5" if satisfied else ""
            )
            record_event(
                conn, case_id, now, "callback", actor, text + (f": {note}" if note else ""),
                {"result": result, "satisfied": satisfied, "note": note},
            )  # fmt: skip
            conn.execute(cases.update().where(cases.c.id == case_id).values(updated_at=now))
        return self.callback(scope, case_id)

    def callback(self, scope: Scope, case_id: str) -> CallbackRecord:
        """A case's callback row; NotFound when it has none or the scope may not see it."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(case_callbacks, customers.c.slug)
                .select_from(case_callbacks.join(cases, cases.c.id == case_callbacks.c.case_id).join(
                    customers, customers.c.id == cases.c.customer_id))
                .where(case_callbacks.c.case_id == case_id, scope.where())
            ).first()  # fmt: skip
        if row is None:
            raise NotFound(f"case {case_id!r} has no callback")
        return CallbackRecord(
            row.case_id, row.slug, bool(row.selected), float(row.drawn_at), row.result, row.satisfied,
            row.note, row.recorded_by, row.recorded_at,
        )  # fmt: skip

    def callbacks_due(
        self, scope: Scope, *, customer: str | None = None, limit: int = 100
    ) -> tuple[str, ...]:
        """Cases drawn for a callback with no result yet, oldest draw first."""
        cond = scope.where() if customer is None else sa.and_(scope.where(), customers.c.slug == customer)
        with self._engine.connect() as conn:
            return tuple(
                conn.execute(
                    sa.select(case_callbacks.c.case_id)
                    .select_from(case_callbacks.join(cases, cases.c.id == case_callbacks.c.case_id).join(
                        customers, customers.c.id == cases.c.customer_id))
                    .where(cond, case_callbacks.c.selected.is_(True), case_callbacks.c.result.is_(None))
                    .order_by(case_callbacks.c.drawn_at, case_callbacks.c.case_id)
                    .limit(limit)
                ).scalars()
            )  # fmt: skip

    # ------------------------------------------------------------------ counts

    def counts(self, scope: Scope, *, now: float, customer: str | None = None) -> FollowUpCounts:
        """Surveys and callbacks by outcome, within the scope (and customer)."""
        cond = scope.where() if customer is None else sa.and_(scope.where(), customers.c.slug == customer)
        unanswered = case_surveys.c.answered_at.is_(None)
        expired = sa.and_(unanswered, case_surveys.c.expires_at <= now)
        selected = case_callbacks.c.selected.is_(True)

        def n(column: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
            return sa.func.coalesce(sa.func.sum(sa.case((column, 1), else_=0)), 0)

        with self._engine.connect() as conn:
            s = conn.execute(
                sa.select(sa.func.count(), n(case_surveys.c.answered_at.is_not(None)), n(expired))
                .select_from(_JOINED)
                .where(cond)
            ).one()
            c = conn.execute(
                sa.select(
                    n(selected),
                    n(sa.and_(selected, case_callbacks.c.result.is_(None))),
                    n(case_callbacks.c.result == "reached"),
                    n(case_callbacks.c.result == "no_answer"),
                )
                .select_from(case_callbacks.join(cases, cases.c.id == case_callbacks.c.case_id).join(
                    customers, customers.c.id == cases.c.customer_id))
                .where(cond)
            ).one()  # fmt: skip
        sent, answered, gone = int(s[0]), int(s[1]), int(s[2])
        return FollowUpCounts(sent, answered, sent - answered - gone, gone, *(int(v) for v in c))

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _case(conn: sa.Connection, scope: Scope, case_id: str) -> Mapping[str, Any]:
        return scoped_case(conn, scope, case_id, cases.c.state, cases.c.customer_id)
