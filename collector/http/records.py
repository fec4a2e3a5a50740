"""API: service records, their customers' sign-offs and verification (``/api/v1/records...``).

- ``GET  /records``                    every kind of stored record (inspection and fault
  reports, service records), newest first, with whether a contact signed it
- ``POST /records``                    build an emergency or repair service report (from a
  case), a routine operations report or a product upgrade record (a customer's period)
- ``GET  /records/verify``             hash every record again: altered or missing ones
- ``GET  /records/{id}``               one record with its sign-off links and signatures
- ``GET  /records/{id}/content``       its bytes
- ``POST /records/{id}/signoff``       a one-time link for a named contact to sign it
- ``GET  /records/{id}/signoffs``      its sign-off links and signatures

Threat model: a record of another customer is 404 exactly like a missing one; making a
sign-off link is for the vendor's staff (engineers, service managers: 403 for customer
admins and viewers), and its token is returned once and stored only as a hash (see
:mod:`collector.records.signoff` for the page's own threat model). Verification reads only
the caller's customers' records.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request, Response, status

from collector.http.deps import GrpcDep, Principal, StoreDep, list_scope, scope_for, store_errors
from collector.http.models_records import (
    BuildIn,
    RecordDetailOut,
    RecordOut,
    RecordsQuery,
    SignoffIn,
    SignoffLinkOut,
    SignoffOut,
    VerificationOut,
    VerifyQuery,
)
from collector.http.reports import CONTENT_TYPES, download
from collector.inspections.service import service_for
from collector.records import signoff
from collector.reports import ReportError
from collector.reports.on_demand import RenderBusy
from collector.store import ApiPrincipal
from collector.store.records import RecordRepo
from collector.store.reports import ReportRepo

if TYPE_CHECKING:
    from collector.notify import Notifier
    from collector.store.cases import CaseRecord

__all__ = ["install", "router"]

router = APIRouter(prefix="/api/v1", tags=["records"])

RecordId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A stored record's id (GET /records).")]


def require_staff(who: ApiPrincipal, what: str) -> None:
    """403 unless an engineer or a service manager."""
    if who.role == "viewer":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")
    if not who.is_staff:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only engineers and service managers {what}")


@router.get("/records", response_model=list[RecordOut])
def list_records(store: StoreDep, who: Principal, q: Annotated[RecordsQuery, Query()]) -> list[RecordOut]:
    """Stored records of the caller's customers, newest first."""
    scope = list_scope(who, q.customer)
    rows = ReportRepo(store).reports(scope, kind=q.kind, subject=q.subject, limit=q.limit)
    signed = RecordRepo(store).signed_versions(scope, [r.id for r in rows])
    return [RecordOut.of_record(r, r.id in signed) for r in rows]


@router.post("/records", response_model=RecordOut, status_code=status.HTTP_201_CREATED)
def build_record(body: BuildIn, store: StoreDep, grpc: GrpcDep, who: Principal) -> RecordOut:
    """Build (or serve the stored, unchanged) service record; 201 either way."""
    from collector.records.stored import build_service_record

    require_staff(who, "build service records")
    scope = scope_for(who, body.customer)
    with store_errors():
        try:
            record = build_service_record(
                service_for(store, grpc).runner,
                scope,
                body.kind,
                body.lang,
                body.format,
                now=time.time(),
                customer=body.customer,
                case_id=body.case,
                period=body.period,
                patient=False,
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except ReportError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except RenderBusy as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            ) from None
    signed = RecordRepo(store).signed_versions(scope, [record.id])
    return RecordOut.of_record(record, record.id in signed)


@router.get("/records/verify", response_model=VerificationOut)
def verify_records(store: StoreDep, who: Principal, q: Annotated[VerifyQuery, Query()]) -> VerificationOut:
    """Recompute every record's SHA-256 (the caller's customers, or ``customer``'s)."""
    scope = scope_for(who, q.customer)
    return VerificationOut.of(RecordRepo(store).verify(scope, customer=q.customer))


@router.get("/records/{record_id}", response_model=RecordDetailOut)
def show_record(record_id: RecordId, store: StoreDep, who: Principal) -> RecordDetailOut:
    with store_errors():
        record = ReportRepo(store).report(who.scope, record_id)
    links = RecordRepo(store).signoffs(who.scope, report_id=record_id)
    now = time.time()
    base = RecordOut.of_record(record, any(s.signed_at is not None for s in links)).model_dump()
    return RecordDetailOut(**base, signoffs=[SignoffOut.of(s, now) for s in links])


@router.get(
    "/records/{record_id}/content",
    response_class=Response,
    responses={200: {"content": {t: {} for t in CONTENT_TYPES.values()}}},
)
def record_content(record_id: RecordId, store: StoreDep, who: Principal) -> Response:
    with store_errors():
        record, content = ReportRepo(store).report_content(who.scope, record_id)
    return download(record, content, "Record")


@router.post(
    "/records/{record_id}/signoff", response_model=SignoffLinkOut, status_code=status.HTTP_201_CREATED
)
def make_signoff_link(
    record_id: RecordId, body: SignoffIn, request: Request, store: StoreDep, who: Principal
) -> SignoffLinkOut:
    """A one-time link for ``contact`` to sign this record as it is now (the token is shown once)."""
    with store_errors():
        ReportRepo(store).report(who.scope, record_id)  # another customer's record: 404 first
        require_staff(who, "ask customers to sign records")
        now = time.time()
        link, token = signoff.make_link(
            RecordRepo(store),
            who.scope,
            record_id,
            contact=body.contact,
            contact_email=body.contact_email,
            lang=body.lang,
            actor=who.name,
            now=now,
            ttl_s=body.expires_in_hours * 3600,
        )
    public = str(getattr(request.app.state, "public_url", "") or "").rstrip("/")
    out = SignoffOut.of(link, now).model_dump()
    return SignoffLinkOut(**out, token=token, url=f"{public}/sign/{token}")


@router.get("/records/{record_id}/signoffs", response_model=list[SignoffOut])
def list_signoffs(record_id: RecordId, store: StoreDep, who: Principal) -> list[SignoffOut]:
    with store_errors():
        ReportRepo(store).report(who.scope, record_id)
    now = time.time()
    return [SignoffOut.of(s, now) for s in RecordRepo(store).signoffs(who.scope, report_id=record_id)]


def install(app: FastAPI) -> None:
    """Mount the records API, the customer's sign-off page and the customer documents API;
    a resolved emergency case's fault-analysis report goes out through the outbox."""
    from collector.emergency.service import on_resolved
    from collector.http.documents import router as documents_router

    on_resolved(_send_fault_report)
    from collector.http.signoff import router as signoff_router

    app.include_router(router)
    app.include_router(signoff_router)
    app.include_router(documents_router)


def _send_fault_report(notifier: Notifier, case: CaseRecord) -> None:
    """The resolved-case hook: the case's fault-analysis report through the outbox."""
    from collector.records.fault_mail import send_fault_report

    send_fault_report(service_for(notifier.outbox.store).runner, notifier, case)
