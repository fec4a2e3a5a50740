"""Where the daemon writes what it produces: the seam between scheduling and transport.

The scheduler only knows the :class:`Sink` protocol. Today the only sink is
:class:`SpoolSink` (results, health and inventory go to the on-disk spool); the
streamer reads the spool on its own, so adding it does not touch the scheduler.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from agent.records import CheckRecord
from agent.spool import KIND_HEALTH, KIND_INVENTORY, KIND_RESULT, Spool, encode_json, encode_record

__all__ = ["MemorySink", "Sink", "SpoolSink"]


class Sink(Protocol):
    """Receives the daemon's output. Methods may raise; the scheduler retries later."""

    def write(
        self,
        records: Sequence[CheckRecord],
        health: Mapping[str, Any] | None = None,
        payloads: Sequence[bytes | None] | None = None,
    ) -> None:
        """Store a batch of check records and optionally a self-health snapshot, atomically.

        ``payloads``, when given, holds each record already encoded with
        :func:`agent.spool.encode_record` (or None): the scheduler encodes in the worker
        thread while the record is fresh in the cache.
        """

    def write_inventory(self, inventory: Mapping[str, Any]) -> None:
        """Store the host inventory (called when it changed)."""

    def stats(self) -> Mapping[str, int]:
        """Counters for the health snapshot (depth, bytes, drops...)."""


class SpoolSink:
    """Writes everything to a :class:`~agent.spool.Spool`, one transaction per call.

    ``on_write`` is called after each successful append (the streamer's ``notify``:
    new entries are there to send).
    """

    def __init__(self, spool: Spool, on_write: Callable[[], None] | None = None) -> None:
        self.spool = spool
        self.on_write = on_write

    def _written(self) -> None:
        if self.on_write is not None:
            self.on_write()

    def write(
        self,
        records: Sequence[CheckRecord],
        health: Mapping[str, Any] | None = None,
        payloads: Sequence[bytes | None] | None = None,
    ) -> None:
        """Append the records, then the health entry, as one spool transaction."""
        encoded = payloads if payloads is not None else [None] * len(records)
        entries = [
            (KIND_RESULT, r.ts, p if p is not None else encode_record(r))
            for r, p in zip(records, encoded, strict=True)
        ]
        if health is not None:
            entries.append((KIND_HEALTH, float(health.get("ts", time.time())), encode_json(health)))
        self.spool.append(entries)
        self._written()

    def write_inventory(self, inventory: Mapping[str, Any]) -> None:
        """Append an ``inventory`` entry."""
        self.spool.append([(KIND_INVENTORY, time.time(), encode_json(inventory))])
        self._written()

    def stats(self) -> Mapping[str, int]:
        """The spool's depth, bytes, high-water mark and drop count."""
        s = self.spool.stats()
        return {
            "spool_depth": s.depth,
            "spool_bytes": s.stored_bytes,
            "spool_high_water": s.high_water,
            "dropped_total": s.dropped_total,
        }


class MemorySink:
    """Keeps everything in lists (tests, and ``diag-agent run`` without a state dir)."""

    def __init__(self) -> None:
        self.records: list[CheckRecord] = []
        self.health: list[dict[str, Any]] = []
        self.inventory: list[dict[str, Any]] = []
        self.batches = 0

    def write(
        self,
        records: Sequence[CheckRecord],
        health: Mapping[str, Any] | None = None,
        payloads: Sequence[bytes | None] | None = None,
    ) -> None:
        """Keep the records and the snapshot (payloads are not needed here)."""
        if records:
            self.records.extend(records)
            self.batches += 1
        if health is not None:
            self.health.append(dict(health))

    def write_inventory(self, inventory: Mapping[str, Any]) -> None:
        """Keep the inventory."""
        self.inventory.append(dict(inventory))

    def stats(self) -> Mapping[str, int]:
        """Record count as depth; nothing is ever dropped."""
        return {"spool_depth": len(self.records), "dropped_total": 0}
