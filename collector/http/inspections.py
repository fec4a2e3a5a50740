"""API: inspection plans and runs, customer profiles (``/api/v1/...``).

- ``GET  /inspections/plans``                     plans the caller can see
- ``GET  /inspections/plans/{name}``              one plan and its latest runs
- ``POST /inspections/plans/{name}/runs``         start a run now (202; runs in the background)
- ``GET  /inspections/runs``, ``/inspections/runs/{id}``   runs, newest first / one run
- ``GET  /inspections/plan-errors``               plan files the collector skipped (engineers)
- ``GET|PUT /customers/{slug}/profile``           name, time zone and logo shown in reports

The reports endpoints live in :mod:`collector.http.reports` (included here).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from collector.http.deps import GrpcDep, Principal, StoreDep, require_write, scope_for, store_errors
from collector.http.models_inspections import (
    CustomerProfileIn,
    CustomerProfileOut,
    PlanDetailOut,
    PlanOut,
    PlansQuery,
    RunOut,
    RunQuery,
    RunsQuery,
)
from collector.http.reports import router as reports_router
from collector.inspections.plan import InspectionPlan
from collector.inspections.service import InspectionService, service_for
from collector.reports import ReportError, clean_logo
from collector.store import ApiPrincipal, NotFound
from collector.store.reports import ReportRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["inspections"])


def _plan(service: InspectionService, who: ApiPrincipal, name: str, customer: str | None) -> InspectionPlan:
    try:
        return service.plan(scope_for(who, customer), name, customer)
    except NotFound as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{exc} (list plans with: diagctl inspections list)"
        ) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.get("/inspections/plans", response_model=list[PlanOut])
def list_plans(
    store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[PlansQuery, Query()]
) -> list[PlanOut]:
    """Inspection plans loaded by the collector, by customer and name."""
    service = service_for(store, grpc)
    now = time.time()
    return [PlanOut.of(p, now) for p in service.visible_plans(scope_for(who, q.customer), q.customer)]


@router.get("/inspections/plan-errors", response_model=list[str])
def plan_errors(store: StoreDep, grpc: GrpcDep, who: Principal) -> list[str]:
    """Problems of the plan files the collector skipped, one per line (file: path: reason)."""
    if who.role != "engineer":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only engineers see the collector's plan files")
    return list(service_for(store, grpc).plan_errors)


@router.get("/inspections/plans/{name}", response_model=PlanDetailOut)
def show_plan(
    name: str, store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[PlansQuery, Query()]
) -> PlanDetailOut:
    """One plan and its ten latest runs."""
    service = service_for(store, grpc)
    plan = _plan(service, who, name, q.customer)
    runs = service.repo.runs(scope_for(who, plan.customer), customer=plan.customer, plan=plan.name, limit=10)
    return PlanDetailOut(
        plan=PlanOut.of(plan, time.time()), runs=[RunOut.of(r, engineer=who.role == "engineer") for r in runs]
    )


@router.post("/inspections/plans/{name}/runs", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED)
async def run_now(
    name: str, store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[PlansQuery, Query()]
) -> RunOut:
    """Start a run of the plan now; it runs in the background: poll ``GET /inspections/runs/{id}``."""
    require_write(who)
    service = service_for(store, grpc)
    plan = _plan(service, who, name, q.customer)
    with store_errors():
        record = await service.launch(plan, "manual", requested_by=who.name)
    return RunOut.of(record, engineer=who.role == "engineer")


@router.get("/inspections/runs", response_model=list[RunOut])
def list_runs(
    store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[RunsQuery, Query()]
) -> list[RunOut]:
    """Runs, newest first."""
    repo = service_for(store, grpc).repo
    rows = repo.runs(
        scope_for(who, q.customer), customer=q.customer, plan=q.plan, state=q.state, limit=q.limit
    )
    return [RunOut.of(r, engineer=who.role == "engineer") for r in rows]


@router.get("/inspections/runs/{run_id}", response_model=RunOut)
def show_run(
    run_id: str, store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[RunQuery, Query()]
) -> RunOut:
    """One run: state, coverage, scores, finding counts (``result=true``: everything)."""
    with store_errors():
        repo = service_for(store, grpc).repo
        run = repo.run(who.scope, run_id, with_result=q.result)
        return RunOut.of(
            run, ReportRepo(store).deliveries(who.scope, run_id), engineer=who.role == "engineer"
        )


@router.get("/customers/{customer}/profile", response_model=CustomerProfileOut)
def get_profile(customer: str, store: StoreDep, grpc: GrpcDep, who: Principal) -> CustomerProfileOut:
    """The customer's name, time zone and whether a logo is set (as reports show them)."""
    with store_errors():
        return CustomerProfileOut.of(
            service_for(store, grpc).repo.profile(scope_for(who, customer), customer)
        )


@router.put("/customers/{customer}/profile", response_model=CustomerProfileOut)
async def set_profile(
    customer: str, body: CustomerProfileIn, store: StoreDep, grpc: GrpcDep, who: Principal
) -> CustomerProfileOut:
    """Set the customer's report name, time zone and logo (engineers may create the customer)."""
    require_write(who)
    scope = scope_for(who, customer)
    logo = body.logo()
    if logo is not None:
        try:  # stored as checked: an SVG cut down to its safe subset (collector.reports.svg_logo)
            logo = await asyncio.to_thread(clean_logo, logo)
        except ReportError as exc:
            raise HTTPException(422, f"logo: {exc}") from None
    repo = service_for(store, grpc).repo
    with store_errors():
        profile = await asyncio.to_thread(
            repo.set_profile,
            scope,
            customer,
            name=body.name,
            timezone=body.timezone,
            logo=logo,
            clear_logo=body.clear_logo,
        )
    return CustomerProfileOut.of(profile)


router.include_router(reports_router)
