"""Pages: the fleet (customers by five layers, neediest first, paged) and a host.

The fleet page reads the fleet state kept at ingest (:mod:`collector.store.fleet_state`):
one page of ``PAGE_SIZE`` customers, filtered by name and worst state, under a totals row
for the whole scope, so it stays small and quick at any fleet size (``bench/dashboard.py``).

Threat model: both read only through the session's scope, filtered in SQL; a host of
another customer, by URL, is the same 404 page as one that does not exist. ``/fleet.json``
(polled by ``static/live.js``) is the same data as the page, for the same session and
filters: a browser without a session gets a redirect, never data. Filters are validated
(a 400 page names the field); names in links are quoted (a host may be named ``a/b?#``).
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from checks.api import Layer, Severity
from collector.store import NotFound, Scope
from collector.store.cases import CaseRepo
from collector.store.dashboard import DashboardRepo
from collector.store.fleet import FleetRepo
from collector.store.fleet_state import HOST_STATES, FleetOverview, FleetStateRepo
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


PAGE_SIZE = 50
"""Customers per fleet page: a page stays small at any fleet size."""
STATES = HOST_STATES
"""The state filter: a customer's worst (``NONE``: no result yet)."""


def _overview(
    request: Request, user: WebUser, customer: str, state: str, page: str
) -> tuple[FleetOverview, int]:
    """The page asked for (1-based) of the filtered fleet; a 400 page names a bad filter."""
    if state and state not in STATES:
        raise PageError(400, "web.error.bad_filter", field="state")
    if len(customer) > 200:
        raise PageError(400, "web.error.too_long", field="customer", max=200)
    if not page.isdigit() or not 1 <= int(page) <= 1_000_000:
        raise PageError(400, "web.error.bad_page")
    number = int(page)
    overview = FleetStateRepo(store_of(request)).overview(
        user.principal.scope,
        now=time.time(),
        silent_after_s=SILENT_AFTER_S,
        recent_s=RECENT_S,
        search=customer,
        state=state,
        offset=(number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    return overview, number


def _pages(overview: FleetOverview) -> int:
    return max(1, -(-overview.matched // PAGE_SIZE))


def _link(customer: str, state: str, page: int) -> str:
    """The fleet page's URL with these filters (every value quoted)."""
    query = urlencode(
        [(k, v) for k, v in (("customer", customer), ("state", state)) if v] + [("page", str(page))]
    )
    return f"/fleet?{query}"


@router.get("/fleet")
def fleet_page(
    request: Request, user: WebUserDep, customer: str = "", state: str = "", page: str = "1"
) -> Response:
    overview, number = _overview(request, user, customer, state, page)
    pages = _pages(overview)
    query = urlencode([(k, v) for k, v in (("customer", customer), ("state", state), ("page", page)) if v])
    return render(
        request,
        "fleet.html",
        user=user,
        active="fleet",
        rows=overview.rows,
        total=overview.total,
        overview=overview,
        layers=list(Layer),
        states=STATES,
        customer=customer,
        state=state,
        page=number,
        pages=pages,
        prev_link=_link(customer, state, number - 1) if number > 1 else None,
        next_link=_link(customer, state, number + 1) if number < pages else None,
        live=f"/fleet.json?{query}",
    )


@router.get("/fleet.json")
def fleet_json(
    request: Request, user: WebUserDep, customer: str = "", state: str = "", page: str = "1"
) -> Response:
    """The fleet page's data, same filters and page (the page polls it to update without reloading)."""
    overview, number = _overview(request, user, customer, state, page)
    return JSONResponse(
        {
            "generated_at": time.time(),
            "page": number,
            "pages": _pages(overview),
            "page_size": PAGE_SIZE,
            "matched": overview.matched,
            "customers_total": overview.customers,
            "total": overview.total.to_dict(),
            "customers": [r.to_dict() for r in overview.rows],
        }
    )


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


@router.get("/hosts/{customer}/{name:path}")  # a host name may hold "/"
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
