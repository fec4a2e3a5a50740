"""List responses are pages: at most ``limit`` rows and 4 MiB, with a next link (issue 13, #5),
against a real uvicorn on loopback; diagctl follows the pages."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collector.http.app import create_app
from collector.http.pages import PAGE_BYTES
from collector.store import IngestBatch, ResultRow, Store
from collector.store.types import GapRow
from diagctl.main import main as diagctl
from tests.collector.http_server import serving

T0 = 1_700_000_000.0
RESULTS = 30
GAPS = 250
FINDING_BYTES = 400_000  # 30 results of 400 KB: 12 MB, three pages' worth


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('pages') / 'c.db'}")
    agent, _ = store.enroll_agent("acme", host="web1", agent_id="acme-web1")
    big = json.dumps([{"detail": "x" * FINDING_BYTES}])
    rows = [
        ResultRow(seq, T0 + seq, "host.load", "host", "OK", "OK", f"result {seq}", 1.0, big, None)
        for seq in range(1, RESULTS + 1)
    ]
    store.ingest(agent, IngestBatch(RESULTS, 1, rows, [], [], []))
    # Gaps with equal drop times too: the cursor orders by (time, id), not time alone.
    store.record_gaps(
        agent, [GapRow(1000 + 2 * i, 1000 + 2 * i, 1, "spool_full", T0 + i // 3) for i in range(GAPS)]
    )
    viewer = store.create_api_token("acme-viewer", "viewer", customer="acme")
    with serving(create_app(store, None)) as url:
        yield url, viewer
    store.close()


def _get(url: str, token: str, path: str, **params: str | int) -> httpx.Response:
    return httpx.get(url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _follow(
    url: str, token: str, path: str, **params: str | int
) -> tuple[list[dict[str, object]], list[int]]:
    rows: list[dict[str, object]] = []
    sizes: list[int] = []
    response = _get(url, token, path, **params)
    while True:
        assert response.status_code == 200, response.text
        sizes.append(len(response.content))
        rows.extend(response.json())
        link = response.headers.get("link")
        if link is None:
            return rows, sizes
        assert link.endswith('>; rel="next"') and link.startswith(f"<{path}?")
        response = httpx.get(
            url + link[1 : link.index(">")], headers={"Authorization": f"Bearer {token}"}, timeout=60
        )


def test_results_pages_are_size_capped_and_complete(site: tuple[str, str]) -> None:
    url, viewer = site
    rows, sizes = _follow(url, viewer, "/api/v1/results", host="web1", limit=1000)
    assert len(sizes) >= 3 and max(sizes) <= PAGE_BYTES
    assert [r["seq"] for r in rows] == list(range(RESULTS, 0, -1))  # each once, newest first


def test_gaps_have_a_limit_and_pages(site: tuple[str, str]) -> None:
    url, viewer = site
    first = _get(url, viewer, "/api/v1/gaps")
    assert len(first.json()) == 100 and "link" in first.headers
    rows, sizes = _follow(url, viewer, "/api/v1/gaps", limit=70)
    assert len(sizes) == 4 and len(rows) == GAPS
    assert sorted(int(str(r["first_seq"])) for r in rows) == [1000 + 2 * i for i in range(GAPS)]
    assert _get(url, viewer, "/api/v1/gaps", limit=1001).status_code == 422
    bad = _get(url, viewer, "/api/v1/gaps", cursor="not-a-cursor")
    assert bad.status_code == 422 and bad.json()["detail"].startswith("cursor: ")


def test_diagctl_follows_the_pages(
    site: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIAGCTL_CONFIG", str(tmp_path / "none.yaml"))
    url, viewer = site
    out = io.StringIO()
    assert (
        diagctl(["--server", url, "--token", viewer, "--format", "json", "gaps", "--limit", "240"], out=out)
        == 0
    )
    assert len(json.loads(out.getvalue())) == 240
    out = io.StringIO()
    rc = diagctl(
        ["--server", url, "--token", viewer, "--format", "json", "results", "--host", "web1"], out=out
    )
    assert rc == 0 and [r["seq"] for r in json.loads(out.getvalue())] == list(range(RESULTS, 0, -1))
