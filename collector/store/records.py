"""Customers' sign-offs of service records, and the verification of every record's hash.

:class:`RecordRepo` wraps a :class:`~collector.store.Store`. Reads that serve a person take
a :class:`~collector.store.Scope` (filtered in SQL: another customer's record or sign-off is
indistinguishable from one that does not exist). The sign-off page has no person behind it,
only a link's token: :meth:`RecordRepo.link` and :meth:`RecordRepo.sign` take the token's
SHA-256 (the token itself is never stored or passed down here).

Signing is a compare-and-set: ``signed_at`` is set only while it is NULL, the link has not
expired and the record's bytes still hash to what the link was made for, so of two
submissions of one link exactly one signs, and nothing is half-written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from collector.store.errors import Conflict, NotFound
from collector.store.queries import Scope
from collector.store.schema import customers
from collector.store.schema_inspections import reports
from collector.store.schema_records import record_signoffs
from collector.store.store import Store

__all__ = ["LinkState", "Problem", "RecordRepo", "SignoffRecord", "Verification"]

LinkState = Literal["pending", "signed", "expired"]


@dataclass(frozen=True, slots=True)
class SignoffRecord:
    """A sign-off link and, once used, its signature (never the token)."""

    id: int
    customer: str
    report_id: int
    report_sha256: str
    """The SHA-256 of the record's bytes the link was made for (and the contact signed)."""
    contact: str
    contact_email: str | None
    lang: str
    created_by: str
    created_at: float
    expires_at: float
    signed_at: float | None
    client_addr: str | None
    user_agent: str | None
    statement: str | None

    def state(self, now: float) -> LinkState:
        if self.signed_at is not None:
            return "signed"
        return "expired" if now >= self.expires_at else "pending"


def _signoff(row: Any) -> SignoffRecord:
    return SignoffRecord(
        id=int(row.id),
        customer=row.slug,
        report_id=int(row.report_id),
        report_sha256=row.report_sha256,
        contact=row.contact,
        contact_email=row.contact_email,
        lang=row.lang,
        created_by=row.created_by,
        created_at=float(row.created_at),
        expires_at=float(row.expires_at),
        signed_at=None if row.signed_at is None else float(row.signed_at),
        client_addr=row.client_addr,
        user_agent=row.user_agent,
        statement=row.statement,
    )


@dataclass(frozen=True, slots=True)
class Problem:
    """One record that does not verify."""

    report_id: int
    customer: str
    kind: str
    """The record's kind (``?`` when the record itself is missing)."""
    subject: str
    problem: Literal["altered", "missing", "file_altered", "file_missing"]
    detail: str


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    """Records whose bytes were hashed."""
    signed: int
    """Signatures checked against their record."""
    problems: tuple[Problem, ...]


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class RecordRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engine = store.engine

    # ------------------------------------------------------------------ sign-off links

    def _signoffs_query(self, scope: Scope) -> Any:
        return (
            sa.select(record_signoffs, customers.c.slug)
            .join(customers, customers.c.id == record_signoffs.c.customer_id)
            .where(scope.where())
        )

    def create_link(
        self,
        scope: Scope,
        report_id: int,
        *,
        token_hash: str,
        contact: str,
        contact_email: str | None,
        lang: str,
        created_by: str,
        expires_at: float,
    ) -> SignoffRecord:
        """A link for ``contact`` to sign record ``report_id`` as its bytes are now.

        NotFound outside ``scope``; Conflict when the stored bytes no longer match the
        record's own hash (an altered record is never offered for signature)."""
        now = self.store._clock()
        with self.store._write() as conn:
            row = conn.execute(
                sa.select(reports.c.customer_id, reports.c.sha256, reports.c.content)
                .join(customers, customers.c.id == reports.c.customer_id)
                .where(reports.c.id == report_id, scope.where())
            ).first()
            if row is None:
                raise NotFound(f"no record {report_id}")
            if _sha256(bytes(row.content)) != row.sha256:
                raise Conflict(f"record {report_id} does not match its hash; run: diagctl records verify")
            new_id = conn.execute(
                record_signoffs.insert()
                .values(
                    customer_id=row.customer_id,
                    report_id=report_id,
                    report_sha256=row.sha256,
                    contact=contact,
                    contact_email=contact_email,
                    lang=lang,
                    token_hash=token_hash,
                    created_by=created_by,
                    created_at=now,
                    expires_at=expires_at,
                )
                .returning(record_signoffs.c.id)
            ).scalar_one()
        return self.signoff(scope, int(new_id))

    def signoff(self, scope: Scope, signoff_id: int) -> SignoffRecord:
        with self._engine.connect() as conn:
            row = conn.execute(self._signoffs_query(scope).where(record_signoffs.c.id == signoff_id)).first()
        if row is None:
            raise NotFound(f"no sign-off {signoff_id}")
        return _signoff(row)

    def signoffs(
        self, scope: Scope, *, report_id: int | None = None, customer: str | None = None, limit: int = 100
    ) -> list[SignoffRecord]:
        """Sign-off links and signatures, newest first."""
        query = self._signoffs_query(scope)
        if report_id is not None:
            query = query.where(record_signoffs.c.report_id == report_id)
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        query = query.order_by(record_signoffs.c.created_at.desc(), record_signoffs.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_signoff(r) for r in conn.execute(query)]

    def link(self, token_hash: str) -> SignoffRecord | None:
        """*internal* (the sign-off page): the link whose token hashes to ``token_hash``."""
        with self._engine.connect() as conn:
            row = conn.execute(
                self._signoffs_query(Scope.everything()).where(record_signoffs.c.token_hash == token_hash)
            ).first()
        return None if row is None else _signoff(row)

    def sign(
        self,
        token_hash: str,
        *,
        report_id: int,
        report_sha256: str,
        client_addr: str | None,
        user_agent: str | None,
        statement: str,
    ) -> SignoffRecord | None:
        """*internal*: sign with the link, once. None when the link is unknown, already used,
        expired, made for another record or version, or the record changed since."""
        now = self.store._clock()
        with self.store._write() as conn:
            current = conn.execute(
                sa.select(reports.c.content).where(reports.c.id == report_id)
            ).scalar_one_or_none()
            if current is None or _sha256(bytes(current)) != report_sha256:
                return None
            done = conn.execute(
                record_signoffs.update()
                .where(
                    record_signoffs.c.token_hash == token_hash,
                    record_signoffs.c.report_id == report_id,
                    record_signoffs.c.report_sha256 == report_sha256,
                    record_signoffs.c.signed_at.is_(None),
                    record_signoffs.c.expires_at > now,
                )
                .values(
                    signed_at=now,
                    client_addr=client_addr,
                    user_agent=user_agent,
                    statement=statement,
                )
            )
            if done.rowcount != 1:
                return None
        return self.link(token_hash)

    def signed_versions(self, scope: Scope, report_ids: list[int]) -> dict[int, list[SignoffRecord]]:
        """The signatures of each of ``report_ids`` (only those signed)."""
        if not report_ids:
            return {}
        query = self._signoffs_query(scope).where(
            record_signoffs.c.report_id.in_(report_ids), record_signoffs.c.signed_at.is_not(None)
        )
        out: dict[int, list[SignoffRecord]] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                out.setdefault(int(row.report_id), []).append(_signoff(row))
        return out

    # ------------------------------------------------------------------ verification

    def _records(self, scope: Scope, customer: str | None) -> Iterator[Any]:
        query = (
            sa.select(
                reports.c.id,
                reports.c.kind,
                reports.c.subject,
                reports.c.sha256,
                reports.c.content,
                reports.c.path,
                customers.c.slug,
            )
            .join(customers, customers.c.id == reports.c.customer_id)
            .where(scope.where())
            .order_by(reports.c.id)
        )
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        with self._engine.connect() as conn:
            yield from conn.execution_options(yield_per=50).execute(query)

    def verify(self, scope: Scope, *, customer: str | None = None) -> Verification:
        """Hash every record of ``scope`` (``customer``'s only, when given) again.

        A record is *altered* when its bytes no longer hash to its own SHA-256 or to the
        SHA-256 its customer signed; *missing* when a signature's record is gone; a record
        also kept as a file (``reports_dir``) is *file_missing* or *file_altered* when that
        file is gone or differs."""
        problems: list[Problem] = []
        signed: dict[int, list[SignoffRecord]] = {}
        for s in self.signoffs(scope, customer=customer, limit=1_000_000):
            if s.signed_at is not None:
                signed.setdefault(s.report_id, []).append(s)
        signatures = sum(len(v) for v in signed.values())
        checked = 0
        for row in self._records(scope, customer):
            checked += 1
            actual = _sha256(bytes(row.content))

            def problem(what: Any, detail: str, row: Any = row) -> None:
                problems.append(Problem(int(row.id), row.slug, row.kind, row.subject, what, detail))

            if actual != row.sha256:
                problem("altered", f"stored bytes hash to {actual}, the record says {row.sha256}")
            for s in signed.pop(int(row.id), []):
                if actual != s.report_sha256:
                    problem(
                        "altered", f"{s.contact} signed {s.report_sha256}; the bytes now hash to {actual}"
                    )
            if row.path:
                problem_file = _file_problem(row.path, row.sha256)
                if problem_file is not None:
                    problem(*problem_file)
        for report_id, gone in signed.items():
            first = gone[0]
            problems.append(
                Problem(
                    report_id,
                    first.customer,
                    "?",
                    "?",
                    "missing",
                    f"signed by {first.contact} (SHA-256 {first.report_sha256}); the record is gone",
                )
            )
        return Verification(checked, signatures, tuple(problems))


def _file_problem(path: str, sha256: str) -> tuple[str, str] | None:
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        return "file_missing", f"the file copy {os.path.basename(path)} is gone"
    except OSError as exc:
        return "file_missing", f"the file copy {os.path.basename(path)} cannot be read ({exc.strerror})"
    if digest != sha256:
        return "file_altered", f"the file copy {os.path.basename(path)} hashes to {digest}"
    return None
