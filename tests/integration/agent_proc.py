"""A minimal agent process for the reliability tests: agent.spool + agent.streamer, no checks.

It appends synthetic check records until the spool's high-water mark reaches
``--count`` (so a restarted process continues where the killed one stopped), streams
them with the real :class:`agent.streamer.Streamer`, and, with ``--exit-when-drained``,
exits 0 once everything is acknowledged and every gap reported. Each record's summary
is ``rec <seq>``: the collector storing ``rec 7`` under any seq but 7 would mean the
agent re-sent acknowledged data as new.

SIGTERM stops it the way the daemon does: flush what can be flushed, keep the rest.

    python -m tests.integration.agent_proc --spool /tmp/a/spool.db --collector 127.0.0.1:50051 \\
        --token dga_... --agent-id a1 --count 500 --rate 200
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from agent.records import CheckRecord
from agent.spool import Spool
from agent.streamer import HostIdentity, Streamer, StreamerSettings
from checks.api import Metric, Result, Severity, Unit


def make_record(seq: int) -> CheckRecord:
    return CheckRecord.from_outputs(
        "host.load",
        "host",
        time.time(),
        0.3,
        [Result(Severity.OK, "OK", f"rec {seq}")],
        [
            Metric("host_load1_per_core_ratio", float(seq), Unit.RATIO),
            Metric("host_cpu_busy_percent", float(seq % 100), Unit.PERCENT, {"cpu": "all"}),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--collector", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--agent-id", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="records per second")
    parser.add_argument("--chunk", type=int, default=5)
    parser.add_argument("--max-bytes", type=int, default=256 * 1024 * 1024)
    parser.add_argument("--batch-entries", type=int, default=100)
    parser.add_argument("--exit-when-drained", action="store_true")
    parser.add_argument("--backoff-base", type=float, default=0.1, help="diag-agent's default: 0.5")
    parser.add_argument("--backoff-cap", type=float, default=1.0, help="diag-agent's default: 30")
    parser.add_argument("--recent-cap", type=float, default=1.0, help="diag-agent's default: 5")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(name)s: %(message)s")

    spool = Spool(args.spool, max_bytes=args.max_bytes)
    settings = StreamerSettings(
        address=args.collector,
        token=args.token,
        batch_entries=args.batch_entries,
        backoff_base_s=args.backoff_base,
        backoff_cap_s=args.backoff_cap,
        recent_backoff_cap_s=args.recent_cap,
        idle_poll_s=0.2,
    )
    streamer = Streamer(spool, settings, HostIdentity(args.agent_id, f"host-{args.agent_id}"))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    streamer.start()
    pause = args.chunk / args.rate
    while not done.is_set():
        high = spool.stats().high_water
        if high < args.count:
            n = min(args.chunk, args.count - high)
            spool.append_records([make_record(high + 1 + i) for i in range(n)])
            streamer.notify()
            done.wait(pause)
            continue
        if args.exit_when_drained and spool.stats().depth == 0 and not spool.gaps():
            break
        done.wait(0.1)
    streamer.stop(3.0)
    stats = spool.stats()
    spool.close()
    print(f"agent {args.agent_id}: high={stats.high_water} depth={stats.depth} dropped={stats.dropped_total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
