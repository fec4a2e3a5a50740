"""API: the fleet as stored (``/api/v1/hosts``, ``/results``, ``/gaps``, ``/upgrades``,
``/ingest/quarantine``).

Every read is scoped by the caller's customer: a host of another customer answers 404,
exactly like one that does not exist. The quarantine is for engineers only.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from collector.http.deps import Principal, StoreDep, list_scope, scope_for, store_errors
from collector.http.models import (
    CustomerQuery,
    GapOut,
    GapsQuery,
    HostDetailOut,
    HostOut,
    ListQuery,
    QuarantinedOut,
    QuarantineQuery,
    ResultOut,
    ResultsQuery,
    UpgradeOut,
    UpgradesQuery,
)
from collector.http.pages import decode_cursor, offset_of, page, page_by_offset
from collector.store.fleet import FleetRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/hosts", response_model=list[HostOut], tags=["hosts"])
def list_hosts(
    store: StoreDep, who: Principal, q: Annotated[ListQuery, Query()], request: Request, response: Response
) -> list[HostOut]:
    """Hosts by customer and name: one page (``limit`` rows, at most 4 MiB of JSON); a
    ``Link: <...>; rel="next"`` header gives the next page."""
    scope = list_scope(who, q.customer)
    offset = offset_of(q.cursor)
    hosts = FleetRepo(store).list_hosts(scope, limit=q.limit + 1, offset=offset)
    return page_by_offset(request, response, [HostOut.of(h) for h in hosts], offset, q.limit)


@router.get("/hosts/{name}", response_model=HostDetailOut, tags=["hosts"])
def host_detail(
    name: str, store: StoreDep, who: Principal, q: Annotated[CustomerQuery, Query()]
) -> HostDetailOut:
    """Latest result per check, grouped by layer; ``customer`` disambiguates a shared name."""
    with store_errors():
        return HostDetailOut.of(FleetRepo(store).host_detail(scope_for(who, q.customer), name, q.customer))


@router.get("/results", response_model=list[ResultOut], tags=["results"])
def results(
    store: StoreDep, who: Principal, q: Annotated[ResultsQuery, Query()], request: Request, response: Response
) -> list[ResultOut]:
    """Results of one host, newest first: one page (``limit`` rows, at most 4 MiB of JSON);
    a ``Link: <...>; rel="next"`` header gives the next page."""
    since = q.since.timestamp() if q.since is not None else None
    before = decode_cursor(q.cursor)
    with store_errors():
        rows = FleetRepo(store).results(
            scope_for(who, q.customer), q.host, q.check, since, q.limit + 1, q.customer, before=before
        )
    return page(request, response, [ResultOut.of(r) for r in rows], [(r.ts, r.row_id) for r in rows], q.limit)


@router.get("/gaps", response_model=list[GapOut], tags=["results"])
def gaps(
    store: StoreDep, who: Principal, q: Annotated[GapsQuery, Query()], request: Request, response: Response
) -> list[GapOut]:
    """Sequence ranges agents dropped (spool full): results that will never arrive, newest
    first; one page, with a ``Link: <...>; rel="next"`` header when more follow."""
    scope = list_scope(who, q.customer)
    with store_errors():
        rows = FleetRepo(store).gaps(
            scope, q.host, q.customer, limit=q.limit + 1, before=decode_cursor(q.cursor)
        )
    return page(
        request, response, [GapOut.of(g) for g in rows], [(g.dropped_at, g.row_id) for g in rows], q.limit
    )


@router.get("/ingest/quarantine", response_model=list[QuarantinedOut], tags=["ops"])
def quarantine(
    store: StoreDep, who: Principal, q: Annotated[QuarantineQuery, Query()]
) -> list[QuarantinedOut]:
    """Acknowledged batches the materialiser could not apply, kept aside with the reason (engineers).

    They are counted in /healthz and /metrics (``quarantined_batches``); this lists
    which agents and sequence ranges they hold and why, newest first. Engineers only:
    the reason is the collector's own error, which can name its internals.
    """
    if who.role != "engineer":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only engineers see the ingest quarantine")
    with store_errors():
        rows = FleetRepo(store).quarantined_log_rows(scope_for(who, q.customer), q.host, q.customer, q.limit)
    return [QuarantinedOut.of(r) for r in rows]


@router.get("/upgrades", response_model=list[UpgradeOut], tags=["hosts"])
def upgrades(
    store: StoreDep,
    who: Principal,
    q: Annotated[UpgradesQuery, Query()],
    request: Request,
    response: Response,
) -> list[UpgradeOut]:
    """Product version changes seen between consecutive inventories of a host, newest
    first; one page, with a ``Link: <...>; rel="next"`` header when more follow."""
    scope = list_scope(who, q.customer)
    with store_errors():
        rows = FleetRepo(store).upgrades(
            scope, q.host, q.customer, limit=q.limit + 1, before=decode_cursor(q.cursor)
        )
    return page(
        request, response, [UpgradeOut.of(u) for u in rows], [(u.ts, u.row_id) for u in rows], q.limit
    )
