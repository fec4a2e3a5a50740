"""The collector store: the engine, its parts, observers, retention.

All methods are synchronous and thread-safe; the gRPC and HTTP layers call them from
worker threads. One engine (a QueuePool) serves every thread. On SQLite, writers take
an in-process lock before ``BEGIN IMMEDIATE``: SQLite admits one writer at a time
anyway, and queueing on a lock is cheaper and fairer than SQLite's sleeping busy handler
(which still covers other processes, such as ``diag-collector token create``).

:class:`Store` holds what its parts share (the engine, the write lock, the clock, the
agent-row lock and host cache) and is the front door of its parts, one module each:
enrolment and agent login (:mod:`.agents`), API tokens (:mod:`.api_tokens`), direct ingest
and gap reports (:mod:`.ingest`), the ingest log and its materialiser (:mod:`.ingest_log`),
and what a stored batch becomes (:mod:`.writes`). People's queries are in the other
repositories (``FleetRepo``, ``CaseRepo``, ...), which wrap a Store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine

from collector.store.agents import AgentRepo
from collector.store.api_tokens import ApiTokenRepo
from collector.store.batches import (
    GROUP_MAX_BATCHES,
    GROUP_MAX_POINTS,
    ColumnarBatch,
    LogAppend,
    LogDecoder,
    LogStats,
    Materialised,
    SeriesRef,
    point_count,
)
from collector.store.engine import SQLITE_IMMEDIATE, Synchronous, create_engine
from collector.store.errors import AgentRevoked, UnknownAgent
from collector.store.ingest import IngestRepo
from collector.store.ingest_log import IngestLog
from collector.store.migrate import upgrade
from collector.store.names import check_slug, customer_agent_id, customer_shard
from collector.store.observe import Committed, IngestObserver
from collector.store.principal import ROLES, STAFF_ROLES, ApiPrincipal, Role
from collector.store.retention import DAY, RetentionPolicy, delete_older, rollup_chunk, rollup_cutoff
from collector.store.schema import customers, hosts, series
from collector.store.types import AgentIdentity, GapRow, HostFactsRow, IngestBatch
from collector.store.writes import Writes

__all__ = [
    "GROUP_MAX_BATCHES",
    "GROUP_MAX_POINTS",
    "ROLES",
    "STAFF_ROLES",
    "ApiPrincipal",
    "ColumnarBatch",
    "LogAppend",
    "LogStats",
    "Materialised",
    "Role",
    "SeriesRef",
    "Store",
    "customer_agent_id",
    "customer_shard",
    "point_count",
]

log = logging.getLogger(__name__)


class Store:
    """See the module docstring. Build with :meth:`open`."""

    def __init__(
        self,
        engine: Engine,
        *,
        retention: RetentionPolicy | None = None,
        clock: Callable[[], float] = time.time,
        log_decoder: LogDecoder | None = None,
    ) -> None:
        self._engine = engine
        # Injected by whoever opens the store (the ingest layer owns the wire format), so
        # the store never imports back up into ingest.
        self._log_decoder = log_decoder
        self._sqlite = engine.dialect.name == "sqlite"
        self._write_engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._write_lock = threading.Lock()
        self._clock = clock
        self.retention = retention or RetentionPolicy()
        self._cache_lock = threading.Lock()
        self._host_ids: dict[tuple[str, str], int] = {}
        self._sql = _driver_sql(self._sqlite)
        self._observers: list[IngestObserver] = []
        self.observer_failures = 0
        # The parts (one module each; see the module docstring).
        self.agents = AgentRepo(self)
        self.tokens = ApiTokenRepo(self)
        self.writes = Writes(self)
        self.intake = IngestRepo(self)
        self.ingest_log = IngestLog(self)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        synchronous: Synchronous = "NORMAL",
        retention: RetentionPolicy | None = None,
        log_decoder: LogDecoder | None = None,
    ) -> Store:
        """Connect to ``sqlite:///path`` or ``postgresql+psycopg://...``; migrate to head.

        ``log_decoder`` turns ingest-log payloads back into batches
        (:func:`collector.ingest.decode.decode_logged`); a store that may meet logged rows
        (a serving or worker process) needs one.
        """
        engine = create_engine(url, synchronous=synchronous)
        if migrate:
            upgrade(engine)
        return cls(engine, retention=retention, log_decoder=log_decoder)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        for observer in self._observers:
            try:
                observer.close()
            except Exception:  # closing must reach the engine whatever an observer does
                log.exception("ingest observer failed to close")
        self._observers.clear()
        self._engine.dispose()

    # ------------------------------------------------------------------ observers

    def add_observer(self, observer: IngestObserver) -> None:
        """Call ``observer`` after every group commit (see :mod:`collector.store.observe`)."""
        self._observers.append(observer)

    def _notify(self, committed: list[Committed]) -> None:
        if not committed:
            return
        for observer in self._observers:
            try:
                observer.observe(committed)
            except Exception:  # the batches are durable and acked: never fail ingest
                self.observer_failures += 1
                log.exception("ingest observer failed on %d batches", len(committed))

    def tick_observers(self, now: float | None = None) -> None:
        """Let observers act on time passing; call about once a second."""
        at = self._clock() if now is None else now
        for observer in self._observers:
            try:
                observer.tick(at)
            except Exception:
                self.observer_failures += 1
                log.exception("ingest observer tick failed")

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:  # an unreachable store is an answer, not a crash
            log.warning("store ping failed: %s", type(exc).__name__)
            return False
        return True

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        if self._sqlite:
            with self._write_lock, self._write_engine.begin() as conn:
                yield conn
        else:
            with self._engine.begin() as conn:
                yield conn

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT construct (both support ON CONFLICT)."""
        return sqlite_dialect.insert(table) if self._sqlite else pg_dialect.insert(table)

    # ------------------------------------------------------------------ customers

    def _ensure_customer(self, conn: sa.Connection, slug: str) -> int:
        check_slug(slug)
        conn.execute(
            self._insert(customers)
            .values(slug=slug, name=slug, timezone="UTC", settings={}, created_at=self._clock())
            .on_conflict_do_nothing(index_elements=["slug"])
        )
        return int(conn.execute(sa.select(customers.c.id).where(customers.c.slug == slug)).scalar_one())

    def _ensure_host(self, conn: sa.Connection, customer_id: int, name: str) -> int:
        conn.execute(
            self._insert(hosts)
            .values(customer_id=customer_id, name=name, labels={}, facts={})
            .on_conflict_do_nothing(index_elements=["customer_id", "name"])
        )
        return int(
            conn.execute(
                sa.select(hosts.c.id).where(hosts.c.customer_id == customer_id, hosts.c.name == name)
            ).scalar_one()
        )

    # ------------------------------------------------------------------ agents
    def _lock_agent(self, conn: sa.Connection, agent: AgentIdentity) -> Any:
        row = conn.exec_driver_sql(self._sql["lock_agent"], (agent.agent_id,)).first()
        if row is None:
            raise UnknownAgent(f"agent {agent.agent_id!r} is not enrolled")
        if row.revoked_at is not None:
            raise AgentRevoked(f"agent {agent.agent_id!r} was revoked")
        return row

    def _host_id(self, conn: sa.Connection, agent: AgentIdentity) -> int:
        """The host row of the identity's customer and host (never anything from a payload)."""
        key = (agent.customer, agent.host)
        cached = self._host_ids.get(key)
        if cached is not None:
            return cached
        customer_id = conn.execute(
            sa.select(customers.c.id).where(customers.c.slug == agent.customer)
        ).scalar_one_or_none()
        if customer_id is None:
            raise UnknownAgent(f"customer {agent.customer!r} of agent {agent.agent_id!r} does not exist")
        # Cached by the caller only after its transaction commits (_remember_host).
        return self._ensure_host(conn, int(customer_id), agent.host)

    def _remember_host(self, agent: AgentIdentity, host_id: int) -> None:
        with self._cache_lock:
            self._host_ids[(agent.customer, agent.host)] = host_id

    # ------------------------------------------------------------------ the parts' front door

    def enroll_agent(
        self, customer: str, host: str | None = None, agent_id: str | None = None
    ) -> tuple[AgentIdentity, str]:
        """See :meth:`AgentRepo.enroll_agent`."""
        return self.agents.enroll_agent(customer, host, agent_id)

    def revoke_agent(self, agent_id: str) -> bool:
        """See :meth:`AgentRepo.revoke_agent`."""
        return self.agents.revoke_agent(agent_id)

    def agent_customer(self, agent_id: str) -> str | None:
        """See :meth:`AgentRepo.agent_customer`."""
        return self.agents.agent_customer(agent_id)

    def authenticate_agent(self, token: str) -> AgentIdentity | None:
        """See :meth:`AgentRepo.authenticate_agent`."""
        return self.agents.authenticate_agent(token)

    def hello(self, agent: AgentIdentity, facts: HostFactsRow) -> int:
        """See :meth:`AgentRepo.hello`."""
        return self.agents.hello(agent, facts)

    def ingest(self, agent: AgentIdentity, batch: IngestBatch, *, payload: bytes | None = None) -> int:
        """See :meth:`IngestRepo.ingest`."""
        return self.intake.ingest(agent, batch, payload=payload)

    def ingest_many(
        self,
        requests: Sequence[tuple[AgentIdentity, IngestBatch]],
        payloads: Sequence[bytes] | None = None,
    ) -> list[int | Exception]:
        """See :meth:`IngestRepo.ingest_many`."""
        return self.intake.ingest_many(requests, payloads)

    def record_gaps(self, agent: AgentIdentity, gap_rows: Sequence[GapRow]) -> list[int]:
        """See :meth:`IngestRepo.record_gaps`."""
        return self.intake.record_gaps(agent, gap_rows)

    def append_log(self, requests: Sequence[LogAppend]) -> list[tuple[int, int | None] | Exception]:
        """See :meth:`IngestLog.append_log`."""
        return self.ingest_log.append_log(requests)

    def log_stats(self, shard_count: int = 1, shard_index: int = 0) -> LogStats:
        """See :meth:`IngestLog.log_stats`."""
        return self.ingest_log.log_stats(shard_count, shard_index)

    def materialise(
        self,
        *,
        shard_count: int = 1,
        shard_index: int = 0,
        max_points: int = GROUP_MAX_POINTS,
        max_batches: int = 4 * GROUP_MAX_BATCHES,
        cache: dict[int, IngestBatch] | None = None,
        decoder: LogDecoder | None = None,
    ) -> Materialised:
        """See :meth:`IngestLog.materialise`."""
        return self.ingest_log.materialise(
            shard_count=shard_count,
            shard_index=shard_index,
            max_points=max_points,
            max_batches=max_batches,
            cache=cache,
            decoder=decoder,
        )

    def plain_insert_points(self, rows: Sequence[tuple[int, float, float]]) -> None:
        """See :meth:`Writes.plain_insert_points`."""
        self.writes.plain_insert_points(rows)

    def create_api_token(
        self, name: str, role: str, customer: str | None = None, *, expires_at: float | None = None
    ) -> str:
        """See :meth:`ApiTokenRepo.create_api_token`."""
        return self.tokens.create_api_token(name, role, customer, expires_at=expires_at)

    def authenticate_api_token(self, token: str) -> ApiPrincipal | None:
        """See :meth:`ApiTokenRepo.authenticate_api_token`."""
        return self.tokens.authenticate_api_token(token)

    def revoke_api_token(self, token_id: int) -> bool:
        """See :meth:`ApiTokenRepo.revoke_api_token`."""
        return self.tokens.revoke_api_token(token_id)

    # ------------------------------------------------------------------ retention

    def apply_retention(self, now: float | None = None) -> dict[str, int]:
        """Roll up and delete raw points past retention; prune results, health, gaps, rollups.

        Returns the number of rows deleted per table.
        """
        policy = self.retention
        now = self._clock() if now is None else now
        cutoff = rollup_cutoff(policy, now)
        with self._engine.connect() as conn:
            bounds = conn.execute(sa.select(sa.func.min(series.c.id), sa.func.max(series.c.id))).one()
        deleted = {"points": 0}
        if bounds[0] is not None:
            lo, top = int(bounds[0]), int(bounds[1])
            step = policy.series_per_transaction
            while lo <= top:
                with self._write() as conn:
                    deleted["points"] += rollup_chunk(conn, policy, cutoff, lo, lo + step - 1)
                lo += step
        horizons = (
            ("points_rollup", "bucket_ts", policy.rollup_days),
            ("check_results", "ts", policy.results_days),
            ("agent_health", "ts", policy.health_days),
            ("gaps", "recorded_at", policy.gaps_days),
        )
        for table, column, days in horizons:
            with self._write() as conn:
                deleted[table] = delete_older(conn, table, column, now - days * DAY)
        return deleted


_RESULT_COLUMNS = (
    'host_id, "check", agent_id, seq, ts, layer, severity, "key", '
    "summary, duration_ms, findings, inspection_id"
)


def _driver_sql(sqlite: bool) -> dict[str, str]:
    """Hot-path statements in the driver's parameter style (qmark for sqlite3, format for psycopg)."""
    p = "?" if sqlite else "%s"
    findings = "?" if sqlite else "%s::jsonb"
    values = f"({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {findings}, {p})"
    updated = [c.strip() for c in _RESULT_COLUMNS.split(",")[2:]]
    if not sqlite:
        # unnest over one array per column, sent in binary (no per-element quoting);
        # findings travel as text and become jsonb here.
        values = (
            "SELECT * FROM unnest(%b::integer[], %b::text[], %b::text[], %b::bigint[], %b::float8[], "
            "%b::text[], %b::text[], %b::text[], %b::text[], %b::float8[], %b::text[]::jsonb[], %b::text[])"
        )
    else:
        values = f"VALUES {values}"
    return {
        # FOR UPDATE: two collectors ingesting for one agent serialise on its row.
        "lock_agent": f"SELECT max_seq, revoked_at FROM agents WHERE agent_id = {p}"
        + ("" if sqlite else " FOR UPDATE"),
        "agent_logged": f"SELECT id FROM ingest_log WHERE agent_id = {p} AND quarantined_at IS NULL",
        "advance_agent": f"UPDATE agents SET max_seq = {p}, last_seen_at = {p} WHERE agent_id = {p}",
        "touch_host": (
            f"UPDATE hosts SET last_seen = {p}, first_seen = COALESCE(first_seen, {p}), "
            f"clock_skew_s = {p}, clock_skew_at = {p} WHERE id = {p}"
        ),
        "insert_result": f"INSERT INTO check_results ({_RESULT_COLUMNS}) {values}",
        "upsert_latest": (
            f"INSERT INTO latest_results ({_RESULT_COLUMNS}) {values} "
            'ON CONFLICT (host_id, "check") DO UPDATE SET '
            + ", ".join(f"{c} = excluded.{c}" for c in updated)
            + " WHERE excluded.ts >= latest_results.ts"
        ),
        "insert_points": (
            "INSERT OR IGNORE INTO points (series_id, ts, value) VALUES (?, ?, ?)"
            if sqlite
            # One statement with three arrays: far faster than executemany on psycopg.
            else "INSERT INTO points (series_id, ts, value) "
            "SELECT * FROM unnest(%b::integer[], %b::float8[], %b::float8[]) ON CONFLICT DO NOTHING"
        ),
    }
