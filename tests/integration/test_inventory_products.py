"""The documented example config with products, end to end (issue 13 item 10).

``deploy/agent.example.yaml`` with its commented ``products:`` example switched on (the
paths pointed at a real script and a real file here) goes through the real
``diag-agent inventory`` and through a real ``diag-agent run`` streaming to a real
``diag-collector serve``, on SQLite and on PostgreSQL: product versions reach the store
and, after an upgrade and an agent restart, the upgrade records are visible through
the API (``diagctl upgrades``). A product that cannot be read costs only its own entry.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from collector.store.schema import hosts, inventory
from collector.store.store import Store
from diagctl.main import main as diagctl
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening
from tests.integration.harness import REPO, free_port, python_env, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EXAMPLE = REPO / "deploy" / "agent.example.yaml"


def example_with_products(text: str) -> str:
    """The example's text with its commented ``products:`` block switched on."""
    lines = text.splitlines()
    start = lines.index("  # products:")
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  #   "):
            break
        block.append(line)
    enabled = [line.replace("  # ", "  ", 1) for line in block]
    out = [line for line in lines[:start] if line != "  products: []"] + enabled + lines[start + len(block) :]
    return "\n".join(out) + "\n"


def install_product(root: Path, version: str, schema: str) -> None:
    """A fake installed product: a ``--version`` script and a VERSION file."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "release").write_text(version)
    script = root / "bin" / "our-product"
    script.write_text(f'#!/bin/sh\necho "our-product version $(cat {root / "release"}) (build 77)"\n')
    script.chmod(0o755)
    (root / "VERSION").write_text(f"schema {schema}\n")


def example_config(tmp_path: Path, product_root: Path) -> dict[str, Any]:
    """The example (products on) with its paths pointing into ``tmp_path``, plus a broken product."""
    text = example_with_products(EXAMPLE.read_text(encoding="utf-8"))
    text = text.replace("/opt/our-product", str(product_root))
    text = text.replace("/var/lib/diag-agent", str(tmp_path / "state"))
    config: dict[str, Any] = yaml.safe_load(text)
    config["inventory"]["products"].append({"name": "gone", "file": str(tmp_path / "nothing-here")})
    return config


def test_the_commented_products_example_is_valid_as_documented(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(example_with_products(EXAMPLE.read_text(encoding="utf-8")))
    done = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(config)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ")


def test_diag_agent_inventory_reports_every_product_with_the_example_config(tmp_path: Path) -> None:
    install_product(tmp_path / "product", "7.4.2", "3.1")
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(example_config(tmp_path, tmp_path / "product")))

    def run(fmt: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent", "inventory", "--config", str(config), "--format", fmt],
            capture_output=True,
            text=True,
            env=python_env(),
            timeout=60,
        )

    done = run("json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["products"] == [
        {"error": f"{tmp_path / 'nothing-here'} does not exist", "name": "gone", "version": None},
        {"error": None, "name": "our-product", "version": "7.4.2"},
        {"error": None, "name": "our-product-schema", "version": "3.1"},
    ]
    # One product's failure costs only that product: the OS and hardware are there.
    assert facts["os"]["kernel"] and facts["hardware"]["cpu"]["count"] >= 1

    table = run("table")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(line.split() == ["products[our-product].version", "7.4.2"] for line in lines), table.stdout
    assert any(line.startswith("products[gone].error") and "does not exist" in line for line in lines)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collector.db'}"
        return
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        yield url


def _stored_products(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(inventory.c.document)
            .join(hosts, hosts.c.id == inventory.c.host_id)
            .where(hosts.c.name == "web1")
        ).first()
    if row is None:
        return []
    products: list[dict[str, Any]] = row.document.get("products", [])
    return products


@contextmanager
def _agent(tmp_path: Path, config: dict[str, Any], run: int) -> Iterator[None]:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    agent = spawn(["-m", "agent", "run", "--config", str(path)], tmp_path / f"agent-{run}.log")
    try:
        yield
    finally:
        assert agent.terminate() == 0, agent.output()


def test_a_daemon_with_the_example_config_delivers_product_versions_and_upgrades(
    tmp_path: Path, store_url: str
) -> None:
    store = Store.open(store_url)
    _, token = store.enroll_agent("acme", "web1", "web1")
    api_token = store.create_api_token("oncall", "engineer")
    product = tmp_path / "product"
    install_product(product, "7.4.2", "3.1")
    config = example_config(tmp_path, product)
    grpc_addr, http_port = f"127.0.0.1:{free_port()}", free_port()
    config["agent"].update({"id": "web1", "customer": "acme", "interval_s": 600})
    config["collector"] = {"address": grpc_addr, "token": token}
    # Only a cheap check besides the inventory: this test is about the inventory.
    config["checks"] = {"host.load": {"enabled": False}}
    collector = spawn(
        ["-m", "collector.cli", "serve", "--store", store_url, "--grpc-listen", grpc_addr,
         "--http-listen", f"127.0.0.1:{http_port}"],
        tmp_path / "serve.log",
    )  # fmt: skip
    try:
        assert wait_for(lambda: "Ctrl-C stops" in collector.output(), 60), collector.output()
        with _agent(tmp_path, config, 1):
            assert wait_for(lambda: len(_stored_products(store)) == 3, 60), collector.output()
        assert {p["name"]: p["version"] for p in _stored_products(store)} == {
            "gone": None,
            "our-product": "7.4.2",
            "our-product-schema": "3.1",
        }

        install_product(product, "7.5.0", "3.2")  # the customer upgrades; the agent restarts
        server = f"http://127.0.0.1:{http_port}"

        def upgrades() -> list[dict[str, Any]]:
            out = io.StringIO()
            args = ["--server", server, "--token", api_token, "upgrades", "--format", "json"]
            code = diagctl(args, out=out)
            assert code == 0
            rows: list[dict[str, Any]] = json.loads(out.getvalue())
            return rows

        with _agent(tmp_path, config, 2):
            assert wait_for(lambda: len(upgrades()) == 2, 60, interval=0.3), collector.output()
        seen = sorted((u["host"], u["product"], u["from_version"], u["to_version"]) for u in upgrades())
        assert seen == [
            ("web1", "our-product", "7.4.2", "7.5.0"),
            ("web1", "our-product-schema", "3.1", "3.2"),
        ]
    finally:
        collector.terminate()
        store.close()
