"""The customer service file's documents (contracts, acceptance forms, diagrams) in the store.

:class:`DocumentRepo` wraps a :class:`~collector.store.Store`; every call takes a
:class:`~collector.store.Scope`, filtered in SQL: another customer's document is
indistinguishable from one that does not exist. A document is written in one statement
(bytes, sniffed type, SHA-256), so a refused or failed upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from collector.store.errors import NotFound
from collector.store.inspections import customer_id
from collector.store.queries import Scope
from collector.store.schema import customers
from collector.store.schema_records import customer_documents
from collector.store.store import Store

__all__ = ["DocumentRecord", "DocumentRepo"]

_COLUMNS = [c for c in customer_documents.c if c.name != "content"]


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    id: int
    customer: str
    name: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: float


def _document(row: Any) -> DocumentRecord:
    return DocumentRecord(
        id=int(row.id),
        customer=row.slug,
        name=row.name,
        media_type=row.media_type,
        size=int(row.size),
        sha256=row.sha256,
        uploaded_by=row.uploaded_by,
        uploaded_at=float(row.uploaded_at),
    )


class DocumentRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engine = store.engine

    def _query(self, scope: Scope) -> Any:
        return (
            sa.select(*_COLUMNS, customers.c.slug)
            .join(customers, customers.c.id == customer_documents.c.customer_id)
            .where(scope.where())
        )

    def add(
        self, scope: Scope, customer: str, *, name: str, media_type: str, content: bytes, uploaded_by: str
    ) -> DocumentRecord:
        """Store a document of ``customer`` (NotFound outside ``scope`` or for no such customer)."""
        with self.store._write() as conn:
            cid = customer_id(conn, scope, customer)
            new_id = conn.execute(
                customer_documents.insert()
                .values(
                    customer_id=cid,
                    name=name,
                    media_type=media_type,
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    content=content,
                    uploaded_by=uploaded_by,
                    uploaded_at=self.store._clock(),
                )
                .returning(customer_documents.c.id)
            ).scalar_one()
        return self.document(scope, int(new_id))

    def document(self, scope: Scope, document_id: int) -> DocumentRecord:
        with self._engine.connect() as conn:
            row = conn.execute(self._query(scope).where(customer_documents.c.id == document_id)).first()
        if row is None:
            raise NotFound(f"no document {document_id}")
        return _document(row)

    def content(self, scope: Scope, document_id: int) -> tuple[DocumentRecord, bytes]:
        record = self.document(scope, document_id)
        with self._engine.connect() as conn:
            data = conn.execute(
                sa.select(customer_documents.c.content).where(customer_documents.c.id == document_id)
            ).scalar_one()
        return record, bytes(data)

    def documents(self, scope: Scope, customer: str, *, limit: int = 100) -> list[DocumentRecord]:
        """``customer``'s documents, newest first."""
        query = (
            self._query(scope)
            .where(customers.c.slug == customer)
            .order_by(customer_documents.c.uploaded_at.desc(), customer_documents.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_document(r) for r in conn.execute(query)]

    def delete(self, scope: Scope, document_id: int) -> DocumentRecord:
        """Delete a document; NotFound outside ``scope``."""
        record = self.document(scope, document_id)
        with self.store._write() as conn:
            conn.execute(customer_documents.delete().where(customer_documents.c.id == document_id))
        return record
