"""Reports (service records) and their e-mail deliveries in the store.

:class:`ReportRepo` wraps a :class:`~collector.store.Store`. Every read that serves a
person takes a :class:`~collector.store.Scope`, filtered in SQL: a report of another
customer is indistinguishable from one that does not exist. Writes and the delivery
queue (the collector's own, no person) are marked *internal*.

Deliveries are leased: :meth:`ReportRepo.claim_deliveries` takes due rows with a lease,
so of several collectors sharing a store exactly one sends a given report at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from collector.store.errors import NotFound
from collector.store.inspections import customer_id
from collector.store.lease import claim_due
from collector.store.queries import Scope
from collector.store.schema import customers
from collector.store.schema_inspections import report_deliveries, reports
from collector.store.store import Store

__all__ = ["DeliveryRecord", "ReportRecord", "ReportRepo"]

_REPORT_COLUMNS = [c for c in reports.c if c.name != "content"]


@dataclass(frozen=True, slots=True)
class ReportRecord:
    id: int
    customer: str
    kind: str
    subject: str
    lang: str
    format: str
    created_at: float
    sha256: str
    size: int
    path: str | None
    version: str | None = None
    """What the content was rendered from (see ``collector.reports.versions``)."""


def _report(row: Any) -> ReportRecord:
    return ReportRecord(
        id=int(row.id),
        customer=row.slug,
        kind=row.kind,
        subject=row.subject,
        lang=row.lang,
        format=row.format,
        created_at=row.created_at,
        sha256=row.sha256,
        size=int(row.size),
        path=row.path,
        version=row.version,
    )


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A run's report e-mailed to its plan's recipients (``report_deliveries``)."""

    id: int
    customer: str
    run_id: str
    recipients: tuple[str, ...]
    lang: str
    state: str
    """pending (not sent yet, or being retried), sent, or failed (given up; see last_error)."""
    attempts: int
    created_at: float
    next_at: float
    sent_at: float | None
    last_error: str | None


class ReportRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engine = store.engine

    # ------------------------------------------------------------------ reports

    def add_report(
        self,
        customer: str,
        kind: str,
        subject: str,
        lang: str,
        fmt: str,
        content: bytes,
        *,
        path: str | None = None,
        version: str | None = None,
    ) -> ReportRecord:
        """*internal*: store a rendered report as a service record of ``customer``."""
        with self.store._write() as conn:
            cid = customer_id(conn, Scope.everything(), customer)
            new_id = conn.execute(
                reports.insert()
                .values(
                    customer_id=cid,
                    kind=kind,
                    subject=subject,
                    lang=lang,
                    format=fmt,
                    created_at=self.store._clock(),
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                    content=content,
                    path=path,
                    version=version,
                )
                .returning(reports.c.id)
            ).scalar_one()
        return self.report(Scope.of(customer), int(new_id))

    def _reports_query(self, scope: Scope) -> Any:
        return (
            sa.select(*_REPORT_COLUMNS, customers.c.slug)
            .join(customers, customers.c.id == reports.c.customer_id)
            .where(scope.where())
        )

    def report(self, scope: Scope, report_id: int) -> ReportRecord:
        with self._engine.connect() as conn:
            row = conn.execute(self._reports_query(scope).where(reports.c.id == report_id)).first()
        if row is None:
            raise NotFound(f"no report {report_id}")
        return _report(row)

    def report_content(self, scope: Scope, report_id: int) -> tuple[ReportRecord, bytes]:
        """A report and its bytes; NotFound outside the scope."""
        record = self.report(scope, report_id)
        with self._engine.connect() as conn:
            content = conn.execute(sa.select(reports.c.content).where(reports.c.id == report_id)).scalar_one()
        return record, bytes(content)

    def reports(
        self,
        scope: Scope,
        *,
        customer: str | None = None,
        kind: str | None = None,
        subject: str | None = None,
        lang: str | None = None,
        fmt: str | None = None,
        version: str | None = None,
        limit: int = 100,
    ) -> list[ReportRecord]:
        """Service records, newest first."""
        query = self._reports_query(scope)
        for column, value in (
            (reports.c.version, version),
            (customers.c.slug, customer),
            (reports.c.kind, kind),
            (reports.c.subject, subject),
            (reports.c.lang, lang),
            (reports.c.format, fmt),
        ):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(reports.c.created_at.desc(), reports.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_report(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------ report deliveries

    def _delivery(self, row: Any) -> DeliveryRecord:
        return DeliveryRecord(
            id=int(row.id),
            customer=row.slug,
            run_id=row.run_id,
            recipients=tuple(row.recipients),
            lang=row.lang,
            state=row.state,
            attempts=int(row.attempts),
            created_at=float(row.created_at),
            next_at=float(row.next_at),
            sent_at=None if row.sent_at is None else float(row.sent_at),
            last_error=row.last_error,
        )

    def _deliveries_query(self) -> Any:
        return sa.select(report_deliveries, customers.c.slug).join(
            customers, customers.c.id == report_deliveries.c.customer_id
        )

    def queue_delivery(self, customer: str, run_id: str, recipients: Sequence[str], lang: str) -> None:
        """*internal*: e-mail ``run_id``'s report to ``recipients`` (once per run)."""
        now = self.store._clock()
        with self.store._write() as conn:
            cid = customer_id(conn, Scope.everything(), customer)
            conn.execute(
                self.store._insert(report_deliveries)
                .values(
                    customer_id=cid,
                    run_id=run_id,
                    recipients=list(recipients),
                    lang=lang,
                    state="pending",
                    attempts=0,
                    created_at=now,
                    next_at=now,
                )
                .on_conflict_do_nothing(index_elements=["run_id"])
            )

    def claim_deliveries(self, now: float, lease_s: float, limit: int = 10) -> list[DeliveryRecord]:
        """*internal*: pending deliveries due at ``now``, each leased to this caller for ``lease_s``.

        The lease (:mod:`collector.store.lease`): of several collectors sharing the store, one
        sends a given report; if it dies mid-send, the lease runs out and another retries.
        """
        with self.store._write() as conn:
            rows, _ = claim_due(
                conn,
                report_deliveries,
                self._deliveries_query().where(report_deliveries.c.state == "pending"),
                now=now,
                lease_s=lease_s,
                limit=limit,
            )
        return [self._delivery(row) for row in rows]

    def finish_delivery(
        self, delivery_id: int, *, state: str, attempts: int, next_at: float, error: str | None = None
    ) -> None:
        """*internal*: record an attempt's outcome (sent, failed, or pending again at ``next_at``)."""
        values: dict[str, Any] = {
            "state": state,
            "attempts": attempts,
            "next_at": next_at,
            "last_error": error,
        }
        if state == "sent":
            values["sent_at"] = self.store._clock()
        with self.store._write() as conn:
            conn.execute(
                report_deliveries.update().where(report_deliveries.c.id == delivery_id).values(**values)
            )

    def deliveries(self, scope: Scope, run_id: str | None = None) -> list[DeliveryRecord]:
        """Report e-mails, newest first, of the customers ``scope`` may read."""
        query = self._deliveries_query().where(scope.where()).order_by(report_deliveries.c.created_at.desc())
        if run_id is not None:
            query = query.where(report_deliveries.c.run_id == run_id)
        with self.store.engine.connect() as conn:
            return [self._delivery(row) for row in conn.execute(query)]
