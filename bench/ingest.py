"""Ingest benchmark: many simulated agents stream realistic batches to a real collector.

Starts ``diag-collector serve`` as a separate process on loopback (SQLite in a temp dir
unless ``--store`` names a database), enrolls ``--agents`` agents, opens one
bidirectional stream per agent (each on its own TCP connection, like real agents) from
``--clients`` client processes using grpc.aio, and has every agent send ``--batches``
batches of ``--results`` check results with ``--metrics`` points each. Prints one JSON
document:

- ``durable_points_per_s``: metric points acknowledged (hence committed to the ingest
  log) per second of the timed phase; ``points_stored`` is verified by counting rows
  afterwards;
- ``materialised_points_per_s``: the same points over the time from the start of the
  timed phase until the ingest log is empty again (every acknowledged point in ``points``,
  its result in ``check_results``): the materialiser's sustained rate, backlog drain
  included; ``backlog_at_last_ack`` is what was still waiting when the last Ack arrived;
- ``ack_latency_ms``: p50/p99/max from sending a batch to receiving its Ack;
- ``streams_held``: streams welcomed and open at once (and the collector's own gauge);
- ``plain_insert_points_per_s``: in the same run, the baseline: the ingest's rows
  written by the ingest's own points INSERT and nothing else (``Store.plain_insert_points``:
  no gRPC, no decode, no agent row, no series lookup, no results); ``ratio`` = durable /
  plain, ``ratio_materialised`` = materialised / plain. The comparison is kept like for like:

  - same rows: as many points as the timed phase acknowledges (agents x batches x points
    per batch), one series per (agent, result, metric), written round by round and agent
    by agent with the timestamps the agents use, so the (series_id, ts) B-tree sees the
    same insertion order; values 0.5, as the template's;
  - same table: the store's ``points`` table, series ids from 50,000,000 up (no real
    series has them; ``points`` has no foreign key); like the ingest's warm-up batch, one
    untimed round first, so the timed rows go into series that already hold a point;
  - same statement: executemany on SQLite, one unnest statement on PostgreSQL, as the
    ingest's ``_write_points``;
  - same commit size: ``plain_commit_rows`` (default: the group writer's limit,
    ``GROUP_MAX_BATCHES`` batches' worth of points, which is what it commits when the
    queue is full). The ingest commits groups of *at most* that size (under this bench's
    closed loop, groups averaged about 16 batches), so the baseline's commits are never
    smaller than the ingest's and the ratio errs low, not high.

  The baseline runs before the fleet starts, alone on the machine; the ingest shares the
  machine's cores with the client processes that simulate the fleet.

The simulated agents encode their batches with ``agent.wire``, as ``diag-agent`` does:
metrics in the columnar form when the collector offers it (``--metric-form samples``: one
``MetricSample`` per point, as an older agent sends). ``client_cpu_us_per_point`` is the
simulated fleet's own CPU, which real agents would spend on their own hosts but which here
comes out of the same two cores as the collector's.

``--offered POINTS_PER_S`` paces the agents (open loop, like a real fleet on a
schedule); ``--offered 0`` sends back to back (closed loop, saturation throughput).

Reading the latency: each agent keeps at most ``--window`` batches sent and not yet
acknowledged (default: diag-agent's own window, 4), and an Ack may cover several of them
(the collector reads a stream ahead while its previous batches are being stored and
acknowledges what it read meanwhile together). In closed loop every agent always has its
window full, so Little's law fixes the mean latency at agents x window x points per batch /
rate (``ack_latency_littles_law_ms``): with 1,000 agents keeping 4 batches of 200 points
waiting, that is 2.7 s at 300,000 points/s, however fast the collector is. The p99 target is
for a fleet below saturation, which ``--offered`` measures; ``--window 1`` is the
one-batch-at-a-time agent of earlier versions.

    python bench/ingest.py                       # 1000 agents, SQLite, closed loop: saturation
    python bench/ingest.py --offered 60000       # a paced fleet: latency below saturation
    python bench/ingest.py --store postgresql+psycopg://diag@127.0.0.1/diag_bench --ingest-processes 2

``--ingest-processes`` is passed to ``serve`` (default 1, as ``serve``'s own default).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing as mp
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BASE_TS_MS = 1_800_000_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# --- client side (runs in child processes) --------------------------------------------------------


def _template(n_results: int, n_metrics: int, metric_keys: bool) -> list[bytes]:
    """One batch's check results, encoded by the agent's own encoder (``agent.wire``) as
    ``diag-agent`` streams them: each entry's payload is fixed, only seq and ts change."""
    from agent import wire

    payloads = []
    for r in range(n_results):
        layer = ("host", "network", "storage", "platform", "application")[r % 5]
        doc = {
            "check": f"{layer}.bench_{r}",
            "layer": layer,
            "severity": "OK",
            "key": "OK",
            "summary": f"bench check {r}: all fine",
            "duration_ms": 0.15,
            "results": [{"severity": "OK", "key": "OK", "summary": "all fine"}],
            "metrics": [
                {
                    "name": f"bench_value_{m}_ratio",
                    "unit": "ratio",
                    "value": 0.5,
                    "labels": {"item": f"dev{m % 3}"},
                }
                for m in range(n_metrics)
            ],
        }
        payloads.append(wire.check_result(doc, metric_keys=metric_keys))
    return payloads


async def _agent(
    agent_id: str,
    token: str,
    address: str,
    args: dict[str, Any],
    batches: int,
    interval_s: float,
    start_at: Any,
    welcomed: list[int],
    latencies: list[float],
    acked_points: list[int],
    errors: list[str],
) -> None:
    import grpc  # type: ignore[import-untyped, unused-ignore]

    from agent import wire
    from protos.diag.v1 import agent_pb2 as pb

    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_send_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        # Requests go as bytes, encoded like diag-agent's (agent.wire), which has no protobuf runtime.
        connect = channel.stream_stream(
            "/diag.v1.AgentStream/Connect",
            request_serializer=None,
            response_deserializer=pb.CollectorMessage.FromString,
        )
        call = connect(metadata=(("authorization", f"Bearer {token}"),))
        try:
            hello = pb.AgentMessage(hello=pb.Hello(protocol_version=1, agent_id=agent_id, hostname=agent_id))
            await call.write(hello.SerializeToString())
            reply = await call.read()
            if reply is grpc.aio.EOF or reply.WhichOneof("body") != "welcome":
                errors.append(f"{agent_id}: no welcome")
                return
            seq = reply.welcome.resume_after_seq
            columnar = args["metric_form"] == "keys" and "metric_keys" in reply.welcome.features
            template = _template(args["results"], args["metrics"], columnar)
            points_per_batch = args["results"] * args["metrics"]
            # Every batch is encoded before the clock starts: on a real fleet the agents
            # encode on their own hosts, so the two cores measured here go to the
            # collector, not to simulating the fleet (about 140 µs per batch).
            messages = []
            for _ in range(batches):
                entries = []
                for payload in template:
                    seq += 1
                    entries.append(wire.entry(seq, BASE_TS_MS + seq * 1000, wire.ENTRY_RESULT, payload))
                messages.append((wire.agent_message(wire.BATCH, wire.entry_batch(entries)), seq))
            welcomed[0] += 1
            await start_at.wait()
            # Like diag-agent's streamer: up to `window` batches sent and not yet
            # acknowledged; an Ack is cumulative (it may cover several of them).
            window = asyncio.Semaphore(args["window"])
            in_flight: collections.deque[tuple[int, float]] = collections.deque()

            async def send_all() -> None:
                t0 = time.perf_counter()
                phase = random.random()
                for b, (msg, last) in enumerate(messages):
                    if interval_s > 0:
                        due = t0 + (phase + b) * interval_s  # agents are not in lockstep
                        delay = due - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    await window.acquire()
                    in_flight.append((last, time.perf_counter()))
                    await call.write(msg)

            sender = asyncio.ensure_future(send_all())
            try:
                last_seq = messages[-1][1]
                durable = 0
                while durable < last_seq:
                    ack = await call.read()
                    if ack is grpc.aio.EOF or ack.WhichOneof("body") != "ack":
                        errors.append(f"{agent_id}: bad ack {ack}")
                        return
                    durable = ack.ack.durable_through_seq
                    now = time.perf_counter()
                    while in_flight and in_flight[0][0] <= durable:
                        latencies.append(now - in_flight.popleft()[1])
                        acked_points[0] += points_per_batch
                        window.release()
                await sender
            finally:
                sender.cancel()
            await call.done_writing()
        except grpc.aio.AioRpcError as exc:
            errors.append(f"{agent_id}: {exc.code().name} {exc.details()}")
        finally:
            welcomed[1] += 1


async def _client_main(agents: list[tuple[str, str]], address: str, args: dict[str, Any], conn: Any) -> None:
    n_agents_total = args["agents"]
    interval_s = 0.0
    template_points = args["results"] * args["metrics"]
    if args["offered"] > 0:
        # each agent sends a batch every interval so that all agents together offer `offered` points/s
        interval_s = n_agents_total * template_points / args["offered"]
    start_at = asyncio.Event()
    welcomed = [0, 0]
    latencies: list[float] = []
    acked = [0]
    errors: list[str] = []
    tasks = []
    for i, (agent_id, token) in enumerate(agents):
        tasks.append(
            asyncio.create_task(
                _agent(
                    agent_id,
                    token,
                    address,
                    args,
                    args["batches"],
                    interval_s,
                    start_at,
                    welcomed,
                    latencies,
                    acked,
                    errors,
                )
            )
        )
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # connect in waves, as a fleet would after a restart
    deadline = time.monotonic() + 120
    while welcomed[0] + len(errors) < len(agents) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    conn.send(("ready", welcomed[0], errors[:5]))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "go"
    start_at.set()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu0
    conn.send(("done", time.perf_counter() - t0, latencies, acked[0], errors[:5], len(errors), cpu))


def _client_process(agents: list[tuple[str, str]], address: str, args: dict[str, Any], conn: Any) -> None:
    _raise_nofile()
    asyncio.run(_client_main(agents, address, args, conn))


# --- parent ---------------------------------------------------------------------------------------


def _scrape(http: str, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        return None
    return None


def _wait_serving(address: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import grpc  # type: ignore[import-untyped, unused-ignore]
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("collector exited during startup")
        with grpc.insecure_channel(address) as ch:
            try:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.RpcError:
                pass  # not up yet
        time.sleep(0.2)
    raise SystemExit("collector did not start")


def _wait_materialised(store: Any, timeout: float) -> None:
    """Until the collector's ingest log is empty: every acknowledged batch materialised."""
    deadline = time.monotonic() + timeout
    while store.log_stats().pending_batches and time.monotonic() < deadline:
        time.sleep(0.05)


PLAIN_SERIES_BASE = 50_000_000
"""Series ids of the baseline's rows: no real series has them (``points`` has no FK)."""


def _plain_insert(
    store: Any, agents: int, n_results: int, n_metrics: int, batches: int, rows_per_commit: int
) -> float:
    """The baseline (see the module docstring): the ingest's rows, order, table, statement and commits."""
    per_agent = n_results * n_metrics

    def rounds(first_round: int, n_rounds: int) -> Any:
        """Rows in the order the ingest writes them: round by round, agent by agent."""
        for b in range(first_round, first_round + n_rounds):
            for a in range(agents):
                first = PLAIN_SERIES_BASE + a * per_agent
                for r in range(n_results):
                    seq = b * n_results + r + 1  # as the agents number their entries
                    ts = (BASE_TS_MS + seq * 1000) / 1000.0
                    for m in range(n_metrics):
                        yield (first + r * n_metrics + m, ts, 0.5)

    def write(n_rounds: int, first_round: int) -> int:
        total = 0
        chunk: list[tuple[int, float, float]] = []
        for row in rounds(first_round, n_rounds):
            chunk.append(row)
            if len(chunk) == rows_per_commit:
                store.plain_insert_points(chunk)
                total += len(chunk)
                chunk = []
        if chunk:
            store.plain_insert_points(chunk)
            total += len(chunk)
        return total

    write(1, 0)  # like the ingest's warm-up batch: every series gets its first point, untimed
    t0 = time.perf_counter()
    total = write(batches, 1)
    return total / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    from agent.streamer import StreamerSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per agent")
    parser.add_argument("--results", type=int, default=40, help="check results per batch")
    parser.add_argument("--metrics", type=int, default=5, help="metric points per result")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--offered", type=float, default=0.0, help="points/s offered (0: closed loop)")
    parser.add_argument(
        "--window",
        type=int,
        default=StreamerSettings.__dataclass_fields__["window"].default,
        help="batches each agent keeps sent and unacknowledged (default: diag-agent's)",
    )
    parser.add_argument(
        "--metric-form",
        choices=("keys", "samples"),
        default="keys",
        help="how agents encode metrics: keys (columnar, as diag-agent does when the collector offers it) "
        "or samples (one MetricSample each, as older agents do)",
    )
    parser.add_argument("--store", help="store URL (default: SQLite in a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--plain-commit-rows",
        type=int,
        default=0,
        help="rows per commit of the plain-insert baseline (default: the ingest's largest group)",
    )
    parser.add_argument(
        "--ingest-processes", type=int, default=1, help="serve --ingest-processes N (0: in-process ingest)"
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=1,
        help="spread the agents over this many customers (ingest workers are assigned by customer)",
    )
    parser.add_argument(
        "--ingest-log-max-points",
        type=int,
        default=0,
        help="serve --ingest-log-max-points N (0: its default)",
    )
    args = parser.parse_args(argv)
    _raise_nofile()

    from collector.store import Store
    from collector.store.store import GROUP_MAX_BATCHES, GROUP_MAX_POINTS

    tmp = Path(tempfile.mkdtemp(prefix="diag-bench-"))
    url = args.store or f"sqlite:///{tmp / 'collector.db'}"
    store = Store.open(url)
    points_per_batch = args.results * args.metrics
    plain_commit_rows = args.plain_commit_rows or min(
        GROUP_MAX_BATCHES * points_per_batch, max(GROUP_MAX_POINTS, points_per_batch)
    )
    # 1. the baseline, alone on the machine, before the fleet (see the module docstring)
    plain_rate = _plain_insert(
        store, args.agents, args.results, args.metrics, args.batches, plain_commit_rows
    )
    # 2. enroll the fleet
    suffix = os.urandom(3).hex()
    agents = []
    for i in range(args.agents):
        customer = "bench" if args.customers <= 1 else f"bench-{i % args.customers}"
        identity, token = store.enroll_agent(customer, f"bench-{suffix}-{i}", f"bench-{suffix}-{i}")
        agents.append((identity.agent_id, token))
    grpc_addr = f"127.0.0.1:{_free_port()}"
    http_addr = f"127.0.0.1:{_free_port()}"
    log = (tmp / "collector.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.cli",
            "--log-level",
            "WARNING",
            "serve",
            "--store",
            url,
            "--grpc-listen",
            grpc_addr,
            "--http-listen",
            http_addr,
            "--ingest-processes",
            str(args.ingest_processes),
            *(
                ["--ingest-log-max-points", str(args.ingest_log_max_points)]
                if args.ingest_log_max_points
                else []
            ),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    result: dict[str, Any] = {}
    try:
        _wait_serving(grpc_addr, proc)
        import psutil

        server = psutil.Process(proc.pid)
        ctx = mp.get_context("spawn")
        conns: list[Any] = []
        procs: list[Any] = []
        job = {
            "agents": args.agents,
            "batches": args.batches,
            "results": args.results,
            "metrics": args.metrics,
            "offered": args.offered,
            "window": args.window,
            "metric_form": args.metric_form,
        }
        # warm-up: one batch per agent creates the series (not timed), then the timed run
        for phase, batches in (("warmup", 1), ("timed", args.batches)):
            job["batches"] = batches
            job_offered = job["offered"]
            if phase == "warmup":
                job["offered"] = 0.0
            conns, procs = [], []
            for c in range(args.clients):
                parent_end, child_end = ctx.Pipe()
                p = ctx.Process(
                    target=_client_process, args=(agents[c :: args.clients], grpc_addr, dict(job), child_end)
                )
                p.start()
                conns.append(parent_end)
                procs.append(p)
            job["offered"] = job_offered
            # Each phase starts with an empty ingest log: the warm-up is fully materialised first.
            _wait_materialised(store, 600.0)
            ready = [c.recv() for c in conns]
            held = sum(r[1] for r in ready)
            gauge = _scrape(http_addr, "diag_connected_agents")
            family = [server, *server.children(recursive=True)]
            cpu0 = sum(sum(p.cpu_times()[:2]) for p in family)
            grpc_cpu0 = sum(server.cpu_times()[:2])
            wall_cpu0 = sum(psutil.cpu_times()[:3])
            t0 = time.perf_counter()
            for c in conns:
                c.send("go")
            done = [c.recv() for c in conns]
            elapsed = time.perf_counter() - t0
            backlog = store.log_stats()
            grpc_cpu_acked = sum(server.cpu_times()[:2]) - grpc_cpu0
            workers_cpu_acked = sum(sum(p.cpu_times()[:2]) for p in family[1:]) - (cpu0 - grpc_cpu0)
            _wait_materialised(store, 600.0)
            materialised_elapsed = time.perf_counter() - t0
            cpu1 = sum(sum(p.cpu_times()[:2]) for p in family)
            machine_busy = sum(psutil.cpu_times()[:3]) - wall_cpu0
            for p in procs:
                p.join(30)
            if phase == "warmup":
                continue
            latencies = sorted(x for d in done for x in d[2])
            acked_points = sum(d[3] for d in done)
            errors = [e for d in done for e in d[4]] + [e for r in ready for e in r[2]]
            q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
            result = {
                "agents": args.agents,
                "client_processes": args.clients,
                "streams_held": held,
                "collector_connected_agents_gauge": gauge,
                "batches_per_agent": batches,
                "results_per_batch": args.results,
                "points_per_batch": points_per_batch,
                "window": args.window,
                "offered_points_per_s": args.offered or "closed loop",
                "elapsed_s": round(elapsed, 3),
                "points_acked": acked_points,
                "durable_points_per_s": round(acked_points / elapsed),
                "durable_results_per_s": round(acked_points / elapsed / args.metrics),
                "backlog_at_last_ack": {
                    "batches": backlog.pending_batches,
                    "points": backlog.pending_points,
                    "lag_s": round(backlog.lag_seconds(time.time()), 2),
                },
                "materialised_elapsed_s": round(materialised_elapsed, 3),
                "materialised_points_per_s": round(acked_points / materialised_elapsed),
                "ack_latency_ms": {
                    "p50": round(q[49] * 1000, 1),
                    "p99": round(q[98] * 1000, 1),
                    "max": round(latencies[-1] * 1000, 1) if latencies else None,
                },
                "ack_latency_littles_law_ms": (
                    round(1000 * args.agents * args.window * points_per_batch * elapsed / acked_points, 1)
                    if not args.offered and acked_points
                    else None
                ),
                "collector_cpu_s": round(cpu1 - cpu0, 2),
                "collector_cpu_us_per_point_until_last_ack": {
                    "grpc_process": round(grpc_cpu_acked / acked_points * 1e6, 2),
                    "ingest_workers": round(workers_cpu_acked / acked_points * 1e6, 2),
                },
                "machine_busy_cpu_s": round(machine_busy, 2),
                "client_cpu_us_per_point": round(sum(d[6] for d in done) / max(1, acked_points) * 1e6, 2),
                "errors": sum(d[5] for d in done),
                "error_samples": errors[:3],
            }
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    import sqlalchemy as sa

    from collector.store.schema import points

    with store.engine.connect() as conn:
        stored = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(points).where(points.c.series_id < PLAIN_SERIES_BASE)
            ).scalar_one()
        )
    store.close()
    result.update(
        {
            "points_stored": stored,
            "points_expected": args.agents * (args.batches + 1) * points_per_batch,
            "plain_insert_points_per_s": round(plain_rate),
            "plain_commit_rows": plain_commit_rows,
            "ratio": round(result.get("durable_points_per_s", 0) / plain_rate, 3),
            "ratio_materialised": round(result.get("materialised_points_per_s", 0) / plain_rate, 3),
            "store": url.split("://")[0],
            "ingest_processes": args.ingest_processes,
            "metric_form": args.metric_form,
            "customers": args.customers,
            "cpus": os.cpu_count(),
        }
    )
    print(json.dumps(result, indent=2))
    if not args.keep and not args.store:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
