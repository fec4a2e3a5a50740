"""API: the customer service file's documents (``/api/v1/customers/{c}/documents``, ``/api/v1/documents``).

- ``POST   /customers/{customer}/documents?name=F``  upload: the raw bytes as the body
  (any Content-Type; the type is told by the bytes), at most 10 MiB
- ``GET    /customers/{customer}/documents``         the list, newest first
- ``GET    /documents/{id}/content``                 download
- ``DELETE /documents/{id}``                         delete

Threat model (what may be uploaded: :mod:`collector.records.documents`): uploading and
deleting is for engineers, service managers and the customer's own admins (viewers: 403);
another customer's documents are 404 by id and 403 by customer, like every other list.
Downloads are attachments with ``nosniff`` and a sandbox CSP, so even a document a browser
misjudged cannot run in the collector's origin. The body is capped before it is read
(:mod:`.body_limits`); a refused upload is 413/415/422 naming the problem, and nothing is
stored for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from collector.http.deps import Principal, StoreDep, scope_for, store_errors
from collector.http.models import _Out
from collector.records.documents import MAX_BYTES, DocumentRefused, check_upload
from collector.store import ApiPrincipal, Store
from collector.store.documents import DocumentRecord, DocumentRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["documents"])

Customer = Annotated[str, Path(max_length=63, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
DocumentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class DocumentOut(_Out):
    id: int
    customer: str
    name: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    download: str

    @classmethod
    def of(cls, d: DocumentRecord) -> DocumentOut:
        return cls(
            id=d.id,
            customer=d.customer,
            name=d.name,
            media_type=d.media_type,
            size=d.size,
            sha256=d.sha256,
            uploaded_by=d.uploaded_by,
            uploaded_at=datetime.fromtimestamp(d.uploaded_at, UTC),
            download=f"/api/v1/documents/{d.id}/content",
        )


def require_document_writer(who: ApiPrincipal) -> None:
    if who.role == "viewer":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")


@router.post("/customers/{customer}/documents", response_model=DocumentOut, status_code=201)
async def upload_document(
    customer: Customer,
    request: Request,
    store: StoreDep,
    who: Principal,
    name: Annotated[str, Query(min_length=1, max_length=200, description="The file name, e.g. contract.pdf")],
) -> DocumentOut:
    """Upload a document: the file's bytes as the request body."""
    scope = scope_for(who, customer)
    require_document_writer(who)
    data = await request.body()
    if len(data) > MAX_BYTES:
        raise HTTPException(413, f"a document may be at most {MAX_BYTES:,} bytes")
    return await run_in_threadpool(_store_upload, store, who, customer, name, data, scope)


def _store_upload(
    store: Store, who: ApiPrincipal, customer: str, name: str, data: bytes, scope: object
) -> DocumentOut:
    try:
        sniffed = check_upload(name, data)
    except DocumentRefused as exc:
        code = 422 if str(exc).startswith("name:") or "empty" in str(exc) else 415
        raise HTTPException(code, str(exc)) from None
    with store_errors():
        record = DocumentRepo(store).add(
            who.scope, customer, name=name, media_type=sniffed.media_type, content=data, uploaded_by=who.name
        )
    return DocumentOut.of(record)


@router.get("/customers/{customer}/documents", response_model=list[DocumentOut])
def list_documents(
    customer: Customer,
    store: StoreDep,
    who: Principal,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DocumentOut]:
    scope = scope_for(who, customer)
    return [DocumentOut.of(d) for d in DocumentRepo(store).documents(scope, customer, limit=limit)]


@router.get("/documents/{document_id}/content", response_class=Response)
def document_content(document_id: DocumentId, store: StoreDep, who: Principal) -> Response:
    with store_errors():
        record, data = DocumentRepo(store).content(who.scope, document_id)
    ascii_name = record.name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return Response(
        data,
        media_type=record.media_type,
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(record.name)}"
            ),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Document-Sha256": record.sha256,
        },
    )


@router.delete("/documents/{document_id}", response_model=DocumentOut)
def delete_document(document_id: DocumentId, store: StoreDep, who: Principal) -> DocumentOut:
    with store_errors():
        DocumentRepo(store).document(who.scope, document_id)  # another customer's: 404 first
        require_document_writer(who)
        return DocumentOut.of(DocumentRepo(store).delete(who.scope, document_id))
