"""The fleet's lists are pages too (issue 13, #5: "paginated and size-capped responses
everywhere"): ``/hosts``, ``/agents`` and ``/upgrades`` answer at most ``limit`` rows with a
``Link: rel="next"``, every row exactly once across the pages, scoped to the caller's
customer; diagctl follows the pages. A real SQLite store behind a real uvicorn."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.http.app import create_app
from collector.store import IngestBatch, Store
from collector.store.types import InventoryRow
from diagctl.main import main as diagctl
from tests.collector.http.test_pages import _follow, _get
from tests.collector.http_server import serving

T0 = 1_700_000_000.0
HOSTS = 230  # acme's; globex has 3 more that acme's people must never see
VERSIONS = 160  # consecutive product versions on one host: 159 upgrades


def _inventory(seq: int, version: str) -> IngestBatch:
    doc = {"os": "debian", "products": {"erp": version}}
    return IngestBatch(seq, seq, [], [], [InventoryRow(seq, T0 + seq, doc, f"{seq:064x}")], [])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'c.db'}")
    for i in range(HOSTS):
        store.enroll_agent("acme", host=f"h{i:03d}", agent_id=f"acme-h{i:03d}")
    for i in range(3):
        store.enroll_agent("globex", host=f"g{i}", agent_id=f"globex-g{i}")
    agent, _ = store.enroll_agent("acme", host="erp1", agent_id="acme-erp1")
    for seq in range(1, VERSIONS + 1):
        store.ingest(agent, _inventory(seq, f"4.{seq}.0"))
    tokens = {
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
        "engineer": store.create_api_token("eng", "engineer"),
    }
    with serving(create_app(store, None)) as url:
        yield url, tokens
    store.close()


@pytest.mark.parametrize("path", ["/api/v1/hosts", "/api/v1/agents"])
def test_name_ordered_lists_come_in_pages_each_row_once(site: tuple[str, dict[str, str]], path: str) -> None:
    url, tokens = site
    first = _get(url, tokens["viewer"], path)
    assert len(first.json()) == 100 and "link" in first.headers
    rows, sizes = _follow(url, tokens["viewer"], path, limit=70)
    names = [str(r.get("name") or r.get("agent_id")) for r in rows]
    assert len(sizes) == 4 and len(names) == HOSTS + 1 == len(set(names))  # acme's only, each once
    assert {r["customer"] for r in rows} == {"acme"}
    everyone, _ = _follow(url, tokens["engineer"], path, limit=1000)
    assert len(everyone) == HOSTS + 1 + 3
    only, _ = _follow(url, tokens["engineer"], path, customer="globex", limit=2)
    assert {r["customer"] for r in only} == {"globex"} and len(only) == 3
    assert _get(url, tokens["viewer"], path, limit=1001).status_code == 422
    assert _get(url, tokens["viewer"], path, customer="globex").status_code == 403


def test_upgrades_come_in_pages_newest_first(site: tuple[str, dict[str, str]]) -> None:
    url, tokens = site
    first = _get(url, tokens["viewer"], "/api/v1/upgrades")
    assert len(first.json()) == 100 and "link" in first.headers
    rows, sizes = _follow(url, tokens["viewer"], "/api/v1/upgrades", host="erp1", limit=50)
    assert len(sizes) == 4
    assert [r["to_version"] for r in rows] == [f"4.{seq}.0" for seq in range(VERSIONS, 1, -1)]


def test_diagctl_reads_every_page_of_the_fleet_lists(
    site: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIAGCTL_CONFIG", str(tmp_path / "none.yaml"))
    url, tokens = site
    base = ["--server", url, "--token", tokens["viewer"], "--format", "json"]
    for command, expected in (
        (["hosts"], HOSTS + 1),
        (["agents", "list"], HOSTS + 1),
        (["upgrades"], VERSIONS - 1),
    ):
        out = io.StringIO()
        assert diagctl([*base, *command], out=out) == 0, command
        assert len(json.loads(out.getvalue())) == expected, command
