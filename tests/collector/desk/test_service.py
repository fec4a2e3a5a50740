"""The sweep as ``serve`` runs it: started from the collector config, stopped with the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

from collector.cli.config import load_text
from collector.cli.serve_context import ServeContext
from collector.desk import service
from collector.notify import Notifier
from collector.store import Scope, Store
from collector.store.customer_file import CustomerFileRepo
from collector.store.outbox import OutboxRepo
from collector.store.sla import SlaRepo
from tests.collector.cases.test_api import open_case
from tests.collector.desk.test_sweep import CONTRACT, MON_9
from tests.collector.notify.factories import customer, webhook


def test_serve_runs_the_sweep_until_stopped(tmp_path: Path):
    """Breaches go to the serving process's notifier (the store outbox), as ``serve`` wires it."""
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    configs = {"acme": customer(webhooks=[webhook("http://127.0.0.1:9/hook")])}
    notifier = Notifier(store, configs.get)
    open_case(store, "acme", "db1", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    config = load_text(f"state_dir: {tmp_path}\ndesk: {{sweep_s: 1}}\n")

    async def serve() -> int:
        stop = asyncio.Event()
        ctx = ServeContext(
            store=store, config=config, grpc=cast(Any, None), metrics=cast(Any, None), stop=stop
        )
        tasks = service.start(ctx, notifier=lambda: notifier)
        assert len(tasks) == 1
        for _ in range(200):  # the first pass runs at once; allow a slow machine
            if SlaRepo(store).watermark() > 0:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        return SlaRepo(store).watermark()

    try:
        assert asyncio.run(serve()) > 0
        # run on the real clock: every clock of a case opened in 2024 has breached since
        rows = SlaRepo(store).view(Scope.everything())
        assert sorted((r.target, r.state) for r in rows) == [
            ("first_response", "breached"),
            ("resolve", "breached"),
            ("restore", "breached"),
        ]
        queued = [json.loads(r.payload) for r in OutboxRepo(store).entries()]
        assert sorted(q["event"] for q in queued) == ["sla_breach"] * 3
    finally:
        store.close()


def test_the_sweep_can_be_turned_off(tmp_path: Path):
    config = load_text("desk: {sla_sweep: false}\n")
    ctx = ServeContext(
        store=cast(Any, None),
        config=config,
        grpc=cast(Any, None),
        metrics=cast(Any, None),
        stop=asyncio.Event(),
    )
    assert service.start(ctx) == []


def test_bad_desk_config_names_the_field():
    import pytest

    from diagconfig import ConfigError

    with pytest.raises(ConfigError, match=r"desk\.sweep_s"):
        load_text("desk: {sweep_s: 0}\n")
