"""Pages: the fleet (customers by five layers) and a host.

Threat model: both read only through the session's scope, filtered in SQL; a host of
another customer, by URL, is the same 404 page as one that does not exist. ``/fleet.json``
(polled by ``static/live.js``) is the same data as the page, for the same session: a
browser without a session gets a redirect, never data.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from checks.api import Layer, Severity
from collector.store import NotFound, Scope, Store
from collector.store.cases import CaseRepo
from collector.store.dashboard import DashboardRepo
from collector.store.fleet import FleetRepo
from collector.store.series import SeriesRepo
from collector.web.charts import host_chart
from collector.web.frame import PageError, WebUser, WebUserDep, render, store_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SILENT_AFTER_S = 300.0
"""An active agent not heard from for this long counts as silent on the fleet page."""
RECENT_S = 86400.0
"""Gaps within this period are shown."""
CHART_HOURS = 24
_RANK = {s.value: s.rank for s in Severity}


def _fleet(store: Store, user: WebUser) -> list[Any]:
    return DashboardRepo(store).fleet(
        user.principal.scope, now=time.time(), silent_after_s=SILENT_AFTER_S, recent_s=RECENT_S
    )


@router.get("/fleet")
def fleet_page(request: Request, user: WebUserDep, customer: str | None = None) -> Response:
    rows = _fleet(store_of(request), user)
    if customer:
        rows = [r for r in rows if customer.lower() in r.customer]
    return render(
        request,
        "fleet.html",
        user=user,
        active="fleet",
        rows=rows,
        layers=list(Layer),
        customer=customer or "",
    )


@router.get("/fleet.json")
def fleet_json(request: Request, user: WebUserDep) -> Response:
    """The fleet page's data (the page polls it to update without reloading)."""
    rows = _fleet(store_of(request), user)
    return JSONResponse({"generated_at": time.time(), "customers": [r.to_dict() for r in rows]})


@router.get("/fleet/{customer}")
def customer_page(customer: str, request: Request, user: WebUserDep) -> Response:
    """The customer's hosts, worst first."""
    if not user.principal.scope.allows(customer):
        raise PageError(404, "web.error.no_customer", customer=customer)
    hosts = FleetRepo(store_of(request)).list_hosts(Scope.of(customer), limit=5000)
    if not hosts:
        raise PageError(404, "web.error.no_customer", customer=customer)
    hosts.sort(key=lambda h: (-_RANK.get(h.worst_severity or "", -1), h.name))
    return render(request, "customer.html", user=user, active="fleet", customer=customer, hosts=hosts)


@router.get("/hosts/{customer}/{name}")
def host_page(customer: str, name: str, request: Request, user: WebUserDep) -> Response:
    store = store_of(request)
    scope = user.principal.scope
    if not scope.allows(customer):
        raise PageError(404, "web.error.no_host", host=name)
    try:
        detail = FleetRepo(store).host_detail(scope, name, customer)
        series = DashboardRepo(store).host_series(scope, name, customer)
        inventory, inventory_ts, changes = DashboardRepo(store).host_inventory(scope, name, customer)
    except NotFound:
        raise PageError(404, "web.error.no_host", host=name) from None
    now = time.time()
    charts = []
    repo = SeriesRepo(store)
    for s in series:
        found = repo.points(customer, name, s.name, s.labels, now - CHART_HOURS * 3600, now)
        if found is None:
            continue
        labels = ", ".join(f"{k}={v}" for k, v in s.labels)
        chart = host_chart(user.f, f"{s.name}" + (f" ({labels})" if labels else ""), found[0], found[1])
        if chart is not None:
            charts.append(chart)
    cases = [c for c in CaseRepo(store).list(scope, customer=customer, limit=200) if name in c.hosts]
    upgrades = FleetRepo(store).upgrades(scope, name, customer, limit=20)
    gaps = FleetRepo(store).gaps(scope, name, customer, limit=20)
    return render(
        request,
        "host.html",
        user=user,
        active="fleet",
        d=detail,
        charts=charts,
        cases=cases,
        inventory=inventory,
        inventory_ts=inventory_ts,
        changes=changes,
        upgrades=upgrades,
        gaps=gaps,
        customer=customer,
    )
