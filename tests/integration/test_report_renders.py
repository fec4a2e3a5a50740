"""Reports rendered on request, against a real collector (uvicorn and gRPC on one loop): issue 13 Medium #4.

Parallel requests for one report share one render and one stored record; a case change
that the report does not show renders nothing new; one that it shows does; /healthz keeps
answering while reports render.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from collector.reports.on_demand import RenderBusy, RenderPool, renders
from collector.store import Scope
from collector.store.cases import CaseContent, CaseRepo
from collector.store.schema_inspections import reports
from tests.integration.test_inspections import Site, site  # noqa: F401  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _open_case(site: Site) -> str:  # noqa: F811  # `site` the fixture's type, not the fixture
    onset = time.time() - 2 * 86400 + 3600  # inside the seeded filesystem history of db1
    member = {
        "host": "db1",
        "metric": "storage_fs_used_percent",
        "labels": {"mountpoint": "/data"},
        "layer": "storage",
        "baseline": 80.0,
        "observed": 95.0,
        "score": 0.9,
        "onset_ts": onset,
        "recovered_ts": onset + 1800,
    }
    content = CaseContent(
        "inc-1", "acme", "DEGRADATION", "Storage on db1 degraded", "CRIT", ("db1",), [], [member], {},
        onset, onset + 120,
    )  # fmt: skip
    return CaseRepo(site.store).open_case(content, now=onset + 180)


def _stored(site: Site, case_id: str, fmt: str) -> int:  # noqa: F811
    with site.store.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(reports)
                .where(reports.c.kind == "fault", reports.c.subject == case_id, reports.c.format == fmt)
            ).scalar_one()
        )


def test_parallel_requests_share_one_render_and_one_record(site: Site) -> None:  # noqa: F811
    case_id = _open_case(site)
    started = renders.renders_started
    slowest_health = 0.0

    def get() -> httpx.Response:
        return site.api(f"/api/v1/reports/fault/{case_id}", token="viewer", lang="en", format="pdf")

    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(get) for _ in range(8)]
        while not all(f.done() for f in futures):
            t0 = time.monotonic()
            assert httpx.get(site.url + "/healthz", timeout=30).status_code == 200
            slowest_health = max(slowest_health, time.monotonic() - t0)
            time.sleep(0.05)
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 8, [a.text[:200] for a in answers]
    assert len({a.headers["x-report-id"] for a in answers}) == 1
    assert all(a.content.startswith(b"%PDF-") for a in answers)
    assert renders.renders_started - started == 1
    assert _stored(site, case_id, "pdf") == 1
    # Generous on a shared 2-core machine; eight renders at once took seconds before.
    assert slowest_health < 2.0, f"/healthz took {slowest_health:.2f} s during the renders"


def test_a_case_change_the_report_does_not_show_renders_nothing_new(site: Site) -> None:  # noqa: F811
    case_id = _open_case(site)
    repo = CaseRepo(site.store)
    first = site.api(f"/api/v1/reports/fault/{case_id}", lang="en", format="html")
    assert first.status_code == 200, first.text
    # A notification event bumps the case's updated_at but is not part of the report.
    repo.add_event(case_id, "notified", "e-mail sent to the on-call engineer", now=time.time() + 1)
    again = site.api(f"/api/v1/reports/fault/{case_id}", lang="en", format="html")
    assert again.headers["x-report-id"] == first.headers["x-report-id"]
    # A note is shown in the report: a new version, a new record.
    repo.add_note(Scope.everything(), case_id, actor="wang", text="Freed 20 GB", now=time.time() + 2)
    newer = site.api(f"/api/v1/reports/fault/{case_id}", lang="en", format="html")
    assert newer.headers["x-report-id"] != first.headers["x-report-id"] and "Freed 20 GB" in newer.text
    assert _stored(site, case_id, "html") == 2


def test_a_render_past_the_time_limit_is_503_and_stored_for_the_next_request() -> None:
    pool = RenderPool(max_parallel=1, max_queued=2, time_limit_s=0.2)
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.6)
        return "record"

    with pytest.raises(RenderBusy, match="still being rendered") as busy:
        pool.run(("fault", "C-1", "en", "pdf", "v1"), slow)
    assert busy.value.retry_after_s == 60
    with pytest.raises(RenderBusy):
        pool.run(("fault", "C-2", "en", "pdf", "v1"), slow)
    with pytest.raises(RenderBusy, match="2 reports are being rendered"):
        pool.run(("fault", "C-3", "en", "pdf", "v1"), slow)  # the queue is full: refused at once
    time.sleep(1.5)
    assert pool.run(("fault", "C-1", "en", "pdf", "v1"), lambda: "stored") == "stored"
    assert len(calls) == 2


def test_the_collectors_own_renders_are_never_refused_or_cut_short() -> None:
    """A finished run's reports and e-mailed deliveries wait for their render (patient=True)."""
    pool = RenderPool(max_parallel=1, max_queued=1, time_limit_s=0.1)

    def slow() -> str:
        time.sleep(0.4)
        return "done"

    with pytest.raises(RenderBusy):
        pool.run(("inspection", "r-1", "en", "pdf", "v"), slow)  # the API's request: 503
    assert pool.run(("inspection", "r-2", "en", "pdf", "v"), slow, patient=True) == "done"
