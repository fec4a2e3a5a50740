"""The collector store: enrollment, authentication, idempotent ingest, queries, retention.

All methods are synchronous and thread-safe; the gRPC and HTTP layers call them from
worker threads. One engine (a QueuePool) serves every thread. On SQLite, writers take
an in-process lock before ``BEGIN IMMEDIATE``: SQLite admits one writer at a time
anyway, and queueing on a lock is cheaper and fairer than SQLite's sleeping busy handler
(which still covers other processes, such as ``diag-collector token create``).

Exactly-once ingest: the agent row's ``max_seq`` is read (``SELECT ... FOR UPDATE`` on
PostgreSQL), only entries above it are written, and it is advanced in the same
transaction. A replayed or overlapping batch therefore stores only what is new, and two
collectors handling the same agent serialise on that row. ``UNIQUE(agent_id, seq)`` on
check_results is the safety net under that rule.

The ingest log (:meth:`append_log`, :meth:`materialise`) splits that transaction in
two for the worker processes: the Ack waits only for one log row per batch plus the
``max_seq`` advance; the materialiser applies the row later and deletes it in the same
transaction, so every entry is still applied exactly once. Direct :meth:`ingest` (in-process
mode, tools, tests) first applies any log rows its agent still has, keeping seq order.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine

from collector.store.engine import SQLITE_IMMEDIATE, Synchronous, create_engine
from collector.store.errors import AgentRevoked, Conflict, StoreError, UnknownAgent
from collector.store.inventory import extract_products, product_changes
from collector.store.migrate import upgrade
from collector.store.observe import Committed, IngestObserver
from collector.store.principal import ROLES, STAFF_ROLES, ApiPrincipal, Role
from collector.store.retention import DAY, RetentionPolicy, delete_older, rollup_chunk, rollup_cutoff
from collector.store.schema import (
    agent_health,
    agents,
    api_tokens,
    customers,
    gaps,
    hosts,
    inventory,
    inventory_changes,
    product_upgrades,
    series,
)
from collector.store.schema_ingest_log import ingest_log
from collector.store.tokens import (
    AGENT_TOKEN_KIND,
    API_TOKEN_KIND,
    digest_matches,
    display_prefix,
    hash_token,
    new_token,
)
from collector.store.types import AgentIdentity, GapRow, HostFactsRow, IngestBatch, PointRow

__all__ = [
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
    "customer_shard",
    "point_count",
]

log = logging.getLogger(__name__)

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_AUTH_CACHE_TTL_S = 2.0  # revocation by another process takes effect within this
_AUTH_CACHE_MAX = 10_000
_SERIES_CACHE_MAX = 2_000_000
_LAST_USED_EVERY_S = 60.0
GROUP_MAX_BATCHES = 64
"""At most this many batches, and about GROUP_MAX_POINTS points, go into one ingest commit."""
GROUP_MAX_POINTS = 50_000


@dataclass(slots=True)
class _Pending:
    """One caller's batch waiting for a group commit."""

    agent: AgentIdentity
    batch: IngestBatch
    done: bool = False
    result: int = 0
    error: Exception | None = None
    stored_before: int = 0
    host_id: int = 0
    earlier: list[Committed] = field(default_factory=list)
    """Logged batches of this agent that had to be materialised first (see _ingest_one)."""
    payload: bytes | None = None
    """The batch as the agent sent it, kept if the database refuses the batch (quarantine)."""


_STORE_FAILED = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.InternalError)
"""Errors that mean the store failed (connection, disk, locks), not one batch's data."""


def quarantine_reason(exc: BaseException) -> str:
    """The reason kept with a quarantined batch (engineers only see it; at most 2000 characters)."""
    return f"{type(exc).__name__}: {exc}"[:2000]


def customer_shard(customer: str) -> int:
    """The ingest-log shard of a customer: stable across processes and collectors.

    >>> customer_shard("acme") == customer_shard("acme"), 0 <= customer_shard("acme") < 2**32
    (True, True)
    """
    return zlib.crc32(customer.encode())


@dataclass(frozen=True, slots=True)
class LogAppend:
    """One validated batch to append to the ingest log."""

    agent: AgentIdentity
    payload: bytes
    """The EntryBatch bytes as received; the materialiser decodes them again after a restart."""
    max_seq: int
    points: int


@dataclass(frozen=True, slots=True)
class LogStats:
    """The ingest log's backlog (rows not yet materialised) and its quarantine."""

    pending_batches: int
    pending_points: int
    oldest_received_at: float | None
    quarantined: int

    def lag_seconds(self, now: float) -> float:
        return 0.0 if self.oldest_received_at is None else max(0.0, now - self.oldest_received_at)


@dataclass(slots=True)
class Materialised:
    """What one :meth:`Store.materialise` call did."""

    batches: int = 0
    points: int = 0
    quarantined: int = 0
    applied_ids: list[int] = field(default_factory=list)


LogDecoder = Callable[[bytes, float], IngestBatch]
"""Turns a logged payload back into a batch (:func:`collector.ingest.decode.decode_logged`)."""

_LOG_LOCK_NS = 0x6C6F67  # "log": PostgreSQL advisory locks (namespace, shard) of materialisers


SeriesRef = tuple[str, str, str, tuple[tuple[str, str], ...]]
"""(check, name, unit, labels) of a point: what the store needs to find or create its series."""


@dataclass(slots=True)
class ColumnarBatch(IngestBatch):
    """An :class:`IngestBatch` whose points are columns, as :func:`collector.ingest.decode` builds it.

    No object per point: ``points`` stays empty, and point ``i`` is the series
    ``point_refs[i]`` with the value ``point_values[i]``. ``point_spans`` holds one
    ``(seq, ts, end)`` per result with points, in order: the points from the previous
    span's ``end`` up to this ``end`` (exclusive) belong to the entry ``seq`` at ``ts``.

    >>> b = ColumnarBatch(2, 1, [], [], [], [], [("host.x", "a_ratio", "ratio", ())], [0.5], [(2, 9.0, 1)])
    >>> b.point_rows(), point_count(b)
    ([PointRow(seq=2, ts=9.0, check='host.x', name='a_ratio', unit='ratio', labels=(), value=0.5)], 1)
    """

    point_refs: list[SeriesRef] = field(default_factory=list)
    point_values: list[float] = field(default_factory=list)
    point_spans: list[tuple[int, float, int]] = field(default_factory=list)
    clock_skew_s: float = 0.0
    """How far ahead of the collector's clock the furthest entry was stamped (0: none was
    implausible); those entries carry their arrival time instead (see ``ingest.decode``)."""

    def point_rows(self) -> list[PointRow]:
        """The points as :class:`PointRow` objects (for tests and tools, not the hot path)."""
        rows: list[PointRow] = []
        start = 0
        for seq, ts, end in self.point_spans:
            for (check, name, unit, labels), value in zip(
                self.point_refs[start:end], self.point_values[start:end], strict=True
            ):
                rows.append(PointRow(seq, ts, check, name, unit, labels, value))
            start = end
        return rows


def point_count(batch: IngestBatch) -> int:
    """How many metric points ``batch`` carries, whichever way they are held."""
    return len(batch.point_values) if isinstance(batch, ColumnarBatch) else len(batch.points)


_Columns = tuple[list[SeriesRef], list[float], list[tuple[int, float, int]]]


def _point_columns(batch: IngestBatch) -> _Columns:
    if isinstance(batch, ColumnarBatch):
        return batch.point_refs, batch.point_values, batch.point_spans
    refs: list[SeriesRef] = []
    values: list[float] = []
    spans: list[tuple[int, float, int]] = []
    for p in batch.points:
        refs.append((p.check, p.name, p.unit, p.labels))
        values.append(p.value)
        if spans and spans[-1][0] == p.seq and spans[-1][1] == p.ts:
            spans[-1] = (p.seq, p.ts, len(refs))
        else:
            spans.append((p.seq, p.ts, len(refs)))
    return refs, values, spans


def _check_slug(customer: str) -> str:
    if not _SLUG_RE.match(customer):
        raise StoreError(
            f"customer {customer!r} is not a valid slug: lowercase letters, digits and '-', "
            "starting with a letter or digit, at most 63 characters"
        )
    return customer


def customer_agent_id(customer: str, agent_id: str) -> str:
    """The id an agent chosen by ``customer``'s own people gets: inside the customer's
    namespace ``<customer>.``, so a customer can neither probe (409 against 201) nor
    squat another customer's ids, nor the vendor's ids without a '.'.

    >>> customer_agent_id("acme", "db-01"), customer_agent_id("acme", "acme.db-01")
    ('acme.db-01', 'acme.db-01')
    >>> customer_agent_id("acme", "globex.db-01")
    'acme.globex.db-01'
    """
    return agent_id if agent_id.startswith(f"{customer}.") else f"{customer}.{agent_id}"


def _check_name(kind: str, value: str) -> str:
    if not value or len(value) > 253 or not value.isprintable() or value.strip() != value:
        raise StoreError(f"{kind} {value!r} must be 1-253 printable characters without surrounding spaces")
    return value


def _labels_key(labels: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(sorted(labels), separators=(",", ":"))


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
        # Ingest groups queue here; on SQLite the group writer also holds the write lock.
        self._group_lock = self._write_lock if self._sqlite else threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: deque[_Pending] = deque()
        self._clock = clock
        self.retention = retention or RetentionPolicy()
        self._cache_lock = threading.Lock()
        self._agent_auth: dict[str, tuple[float, AgentIdentity | None]] = {}
        self._host_ids: dict[tuple[str, str], int] = {}
        # Committed series ids per host: one dict lookup per point on the ingest path.
        self._series_ids: dict[int, dict[SeriesRef, int]] = {}
        self._series_cached = 0
        self._token_last_used: dict[int, float] = {}
        self._sql = _driver_sql(self._sqlite)
        self._observers: list[IngestObserver] = []
        self.observer_failures = 0

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
        _check_slug(slug)
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

    def enroll_agent(
        self, customer: str, host: str | None = None, agent_id: str | None = None
    ) -> tuple[AgentIdentity, str]:
        """Create an agent bound to ``customer`` (created if new); the plain token is returned once."""
        _check_slug(customer)
        agent_id = _check_name("agent id", agent_id) if agent_id else f"ag-{uuid.uuid4().hex[:12]}"
        if "." in agent_id and not agent_id.startswith(f"{customer}."):
            # '<customer>.' is that customer's namespace (see customer_agent_id): nobody
            # else, engineers included, may enroll an id in it or in another one.
            raise StoreError(
                f"agent id {agent_id!r}: an id with a '.' must start with its customer, "
                f"'{customer}.<name>'; or choose an id without '.'"
            )
        host = _check_name("host", host) if host else agent_id
        token = new_token(AGENT_TOKEN_KIND)
        with self._write() as conn:
            exists = conn.execute(sa.select(agents.c.id).where(agents.c.agent_id == agent_id)).first()
            if exists is not None:
                raise Conflict(f"agent id {agent_id!r} is already enrolled; revoke it or choose another id")
            customer_id = self._ensure_customer(conn, customer)
            self._ensure_host(conn, customer_id, host)
            token_id = conn.execute(
                agents.insert().values(
                    agent_id=agent_id,
                    customer_id=customer_id,
                    host=host,
                    token_hash=hash_token(token),
                    token_prefix=display_prefix(token),
                    created_at=self._clock(),
                    max_seq=0,
                )
            ).inserted_primary_key
            assert token_id is not None
        return AgentIdentity(agent_id, customer, host, int(token_id[0])), token

    def revoke_agent(self, agent_id: str) -> bool:
        """Revoke the agent's token; False if unknown or already revoked."""
        with self._write() as conn:
            done = conn.execute(
                agents.update()
                .where(agents.c.agent_id == agent_id, agents.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            ).rowcount
        with self._cache_lock:
            self._agent_auth.clear()
        return bool(done)

    def agent_customer(self, agent_id: str) -> str | None:
        """The customer slug an agent belongs to (None if unknown)."""
        with self._engine.connect() as conn:
            slug = conn.execute(
                sa.select(customers.c.slug)
                .join(agents, agents.c.customer_id == customers.c.id)
                .where(agents.c.agent_id == agent_id)
            ).scalar_one_or_none()
        return None if slug is None else str(slug)

    def authenticate_agent(self, token: str) -> AgentIdentity | None:
        """The identity behind an agent token; None for unknown or revoked tokens.

        Answers are cached for 2 s, so a revocation made by another process takes
        effect within that time (this process's own revocations at once).
        """
        digest = hash_token(token)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._agent_auth.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(agents, customers.c.slug)
                .join(customers, customers.c.id == agents.c.customer_id)
                .where(agents.c.token_hash == digest)
            ).first()
        identity = None
        if row is not None and row.revoked_at is None and digest_matches(row.token_hash, digest):
            identity = AgentIdentity(row.agent_id, row.slug, row.host, int(row.id))
        with self._cache_lock:
            if len(self._agent_auth) >= _AUTH_CACHE_MAX:
                self._agent_auth.clear()
            self._agent_auth[digest] = (now + _AUTH_CACHE_TTL_S, identity)
        return identity

    def hello(self, agent: AgentIdentity, facts: HostFactsRow) -> int:
        """Record the agent's host facts and version; returns its resume point (max stored seq)."""
        now = self._clock()
        facts_doc = asdict(facts)
        labels = dict(facts_doc.pop("labels"))
        with self._write() as conn:
            row = self._lock_agent(conn, agent)
            host_id = self._host_id(conn, agent)
            conn.execute(
                agents.update()
                .where(agents.c.agent_id == agent.agent_id)
                .values(last_seen_at=now, agent_version=facts.agent_version[:64])
            )
            conn.execute(
                hosts.update()
                .where(hosts.c.id == host_id)
                .values(
                    facts=facts_doc,
                    labels=labels,
                    last_seen=now,
                    first_seen=sa.func.coalesce(hosts.c.first_seen, now),
                )
            )
        self._remember_host(agent, host_id)
        return int(row.max_seq)

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

    # ------------------------------------------------------------------ ingest

    def ingest(self, agent: AgentIdentity, batch: IngestBatch, *, payload: bytes | None = None) -> int:
        """Store the batch's new entries durably; returns the agent's durable max seq.

        Group commit: concurrent callers queue their batches, and whichever thread holds
        the group lock writes every queued batch in one transaction (a savepoint each, so
        one bad batch fails alone), then commits once. A commit dirties a page per series
        touched, so fewer, larger commits are what lets SQLite keep up with many agents.

        A batch whose data the database refuses (any error but the store itself failing)
        costs only its own savepoint: it is quarantined, exactly as the materialiser does
        with a logged batch: an ``ingest_log`` row with the reason and ``payload`` (the
        EntryBatch bytes as received, when the caller has them), the agent's ``max_seq``
        advanced past it, and its seq acknowledged. Its neighbours in the group commit.
        Raises AgentRevoked / UnknownAgent (nothing stored) or the database's error when
        the store failed (nothing of the group stored).
        """
        request = _Pending(agent, batch, payload=payload)
        with self._queue_lock:
            self._queue.append(request)
        while not request.done:
            with self._group_lock:
                if request.done:
                    break
                with self._queue_lock:
                    group = self._take_group()
                self._commit_group(group)
        if request.error is not None:
            raise request.error
        return request.result

    def ingest_many(
        self,
        requests: Sequence[tuple[AgentIdentity, IngestBatch]],
        payloads: Sequence[bytes] | None = None,
    ) -> list[int | Exception]:
        """Store several agents' batches from one thread, in as few group commits as the limits allow.

        For a caller that already holds many batches (the ingest worker process drains
        its pipe into one call), this is :meth:`ingest` without a thread per batch.
        Returns, in order, each batch's durable max seq or the exception that batch
        failed with (AgentRevoked, UnknownAgent, StoreError or a database error).
        ``payloads`` (the batches as received, in order) are kept with any batch quarantined.
        """
        pending = [_Pending(agent, batch) for agent, batch in requests]
        for request, payload in zip(pending, payloads or (), strict=False):
            request.payload = payload
        with self._group_lock:
            start = 0
            while start < len(pending):
                group: list[_Pending] = []
                points = 0
                while start < len(pending) and len(group) < GROUP_MAX_BATCHES and points < GROUP_MAX_POINTS:
                    points += point_count(pending[start].batch)
                    group.append(pending[start])
                    start += 1
                self._commit_group(group)
        return [p.result if p.error is None else p.error for p in pending]

    def _take_group(self) -> list[_Pending]:
        """Oldest queued batches first, up to the group limits (called under _queue_lock)."""
        group: list[_Pending] = []
        points = 0
        while self._queue and len(group) < GROUP_MAX_BATCHES and points < GROUP_MAX_POINTS:
            request = self._queue.popleft()
            points += point_count(request.batch)
            group.append(request)
        return group

    def _commit_group(self, group: list[_Pending]) -> None:
        # Lock agent rows in one order (a stable sort keeps each agent's batches in order),
        # so two collectors' groups on PostgreSQL cannot deadlock.
        group.sort(key=lambda r: r.agent.agent_id)
        known: dict[int, dict[SeriesRef, int]] = {}
        hosts_seen: dict[tuple[str, str], int] = {}
        committed = False
        try:
            with self._write_engine.begin() as conn:
                for request in group:
                    created: dict[SeriesRef, int] = {}
                    try:
                        with conn.begin_nested():
                            request.result, host_id, request.stored_before = self._ingest_one(
                                conn, request.agent, request.batch, known, created, request.earlier
                            )
                            request.host_id = host_id
                    except (AgentRevoked, UnknownAgent) as exc:  # this batch only; the rest commit
                        request.error = exc
                        continue
                    except _STORE_FAILED:
                        raise  # the store, not this batch, failed: the whole group is retried
                    except Exception as exc:
                        # The database refused this batch's data (or it hit a bug): quarantine
                        # it in its own savepoint; the rest of the group commits.
                        log.exception(
                            "batch of agent %s quarantined: the database refused it", request.agent.agent_id
                        )
                        request.earlier.clear()  # rolled back with the savepoint
                        known.clear()  # may hold series ids created in the rolled-back savepoint
                        try:
                            with conn.begin_nested():
                                request.result, host_id, request.stored_before = self._quarantine_batch(
                                    conn, request, exc
                                )
                                request.host_id = host_id
                        except (AgentRevoked, UnknownAgent) as again:
                            request.error = again
                        continue
                    if created:
                        known.setdefault(host_id, {}).update(created)
                    hosts_seen[(request.agent.customer, request.agent.host)] = host_id
            committed = True
        except sa.exc.SQLAlchemyError as exc:  # the transaction failed: every batch of the group with it
            log.warning("ingest transaction of %d batches failed: %s", len(group), type(exc).__name__)
            for request in group:
                request.error = request.error or exc
        finally:
            if not committed:
                for request in group:
                    # Anything else (a bug) propagates to the thread that ran the group;
                    # the others must still learn that their batch was not stored.
                    request.error = request.error or StoreError("ingest transaction failed")
                    request.done = True
        if not committed:
            return
        # Committed: only now may new ids enter the caches (a rollback would orphan them).
        with self._cache_lock:
            self._host_ids.update(hosts_seen)
        self._remember_series(known)
        if self._observers:
            notes: list[Committed] = []
            for r in group:
                if r.error is None:
                    notes.extend(r.earlier)
                    if r.result > r.stored_before:
                        notes.append(Committed(r.agent, r.host_id, r.stored_before, r.batch))
            self._notify(notes)
        for request in group:
            request.done = True

    def _quarantine_batch(
        self, conn: sa.Connection, request: _Pending, exc: Exception
    ) -> tuple[int, int, int]:
        """Keep a refused batch aside as a quarantined ingest-log row; returns like :meth:`_ingest_one`.

        The agent's ``max_seq`` advances past it, so the batch is acknowledged and never
        retried: it reached the store once, as a quarantined row an engineer can list
        (``diagctl quarantine``), counted in /healthz and /metrics.
        """
        agent, batch = request.agent, request.batch
        stored = int(self._lock_agent(conn, agent).max_seq)
        host_id = self._host_id(conn, agent)
        if batch.max_seq <= stored:
            return stored, host_id, stored
        now = self._clock()
        conn.execute(
            ingest_log.insert().values(
                shard=customer_shard(agent.customer),
                agent_id=agent.agent_id,
                token_id=agent.token_id,
                customer=agent.customer,
                host=agent.host,
                host_id=host_id,
                after_seq=stored,
                max_seq=batch.max_seq,
                received_at=now,
                points=point_count(batch),
                quarantined_at=now,
                error=quarantine_reason(exc),
                payload=request.payload or b"",
            )
        )
        conn.exec_driver_sql(self._sql["advance_agent"], (batch.max_seq, now, agent.agent_id))
        return batch.max_seq, host_id, stored

    def _ingest_one(
        self,
        conn: sa.Connection,
        agent: AgentIdentity,
        batch: IngestBatch,
        known: dict[int, dict[SeriesRef, int]],
        created: dict[SeriesRef, int],
        earlier: list[Committed],
    ) -> tuple[int, int, int]:
        """Write one batch's new entries; returns (durable max seq, host id, durable seq before).

        If batches of this agent still wait in the ingest log (appended by a worker
        process or another collector, not yet materialised), they are materialised here
        first, in this transaction, so the agent's entries are always applied in seq order.
        """
        stored = int(self._lock_agent(conn, agent).max_seq)
        logged = conn.exec_driver_sql(self._sql["agent_logged"], (agent.agent_id,)).all()
        if logged:
            rows = self._log_rows(conn, [ingest_log.c.id.in_([int(r[0]) for r in logged])], len(logged))
            done = self._apply_log_rows(conn, rows, {}, None, known, created, self._clock())
            created.clear()  # now in ``known``
            earlier.extend(done[0])
        host_id = self._host_id(conn, agent)
        seqs = [batch.max_seq]
        seqs.extend(r.seq for r in batch.results)
        seqs.extend(i.seq for i in batch.inventories)
        seqs.extend(h.seq for h in batch.health)
        top = max(seqs)
        if top <= stored:
            return stored, host_id, stored  # a pure replay: everything is already durable
        now = self._clock()
        self._apply_entries(conn, agent, host_id, stored, batch, known, created, now)
        conn.exec_driver_sql(self._sql["advance_agent"], (top, now, agent.agent_id))
        return top, host_id, stored

    def _apply_entries(
        self,
        conn: sa.Connection,
        agent: AgentIdentity,
        host_id: int,
        stored: int,
        batch: IngestBatch,
        known: dict[int, dict[SeriesRef, int]],
        created: dict[SeriesRef, int],
        now: float,
    ) -> None:
        """Write the entries above ``stored``: results, points, inventory, health; touch the host."""
        self._write_results(conn, agent, host_id, stored, batch)
        refs, values, spans = _point_columns(batch)
        if refs:
            self._write_points(conn, host_id, stored, refs, values, spans, known.get(host_id, {}), created)
        for inv in sorted((i for i in batch.inventories if i.seq > stored), key=lambda i: i.seq):
            self._write_inventory(conn, agent, host_id, inv.seq, inv.ts, inv.document, inv.sha256)
        health_rows = {h.seq: h for h in batch.health if h.seq > stored}
        if health_rows:
            conn.execute(
                self._insert(agent_health).on_conflict_do_nothing(),
                [
                    {"agent_id": agent.agent_id, "seq": h.seq, "ts": h.ts, "document": h.document}
                    for h in health_rows.values()
                ],
            )
        skew = batch.clock_skew_s if isinstance(batch, ColumnarBatch) else 0.0
        # The host's clock skew is its current state: set by a batch stamped too far ahead,
        # cleared by the next batch that is not.
        conn.exec_driver_sql(
            self._sql["touch_host"], (now, now, skew or None, now if skew else None, host_id)
        )

    # ------------------------------------------------------------------ ingest log

    def append_log(self, requests: Sequence[LogAppend]) -> list[tuple[int, int | None] | Exception]:
        """Append validated batches to the ingest log in one transaction (the Ack path).

        Per batch: lock the agent row, skip a pure replay (nothing appended), else insert
        one log row (the payload as received, the durable seq before it) and advance the
        agent's ``max_seq`` in the same transaction. Returns, in order, each batch's
        (durable max seq, log row id or None for a replay) or the exception that batch
        failed with (AgentRevoked, UnknownAgent; a database error fails them all).
        """
        out: list[tuple[int, int | None] | Exception] = [StoreError("not appended")] * len(requests)
        if not requests:
            return out
        # Agent rows locked in one order, so two collectors' appends cannot deadlock.
        order = sorted(range(len(requests)), key=lambda i: requests[i].agent.agent_id)
        rows: list[dict[str, Any]] = []
        row_of: list[int] = []
        hosts_seen: dict[tuple[str, str], int] = {}
        # Per agent in this group: its durable max seq so far (locked once, then advanced
        # here as its batches are appended) and the row update, written once at the end.
        durable: dict[str, int] = {}
        advances: dict[str, tuple[int, float, str]] = {}
        now = self._clock()
        try:
            with self._write() as conn:
                for i in order:
                    request = requests[i]
                    agent = request.agent
                    try:
                        stored = durable.get(agent.agent_id)
                        if stored is None:
                            stored = durable[agent.agent_id] = int(self._lock_agent(conn, agent).max_seq)
                        if request.max_seq <= stored:
                            out[i] = (stored, None)  # a pure replay: already durable
                            continue
                        host_id = self._host_id(conn, agent)
                    except (AgentRevoked, UnknownAgent) as exc:  # nothing of it written
                        out[i] = exc
                        continue
                    hosts_seen[(agent.customer, agent.host)] = host_id
                    durable[agent.agent_id] = request.max_seq
                    advances[agent.agent_id] = (request.max_seq, now, agent.agent_id)
                    rows.append(
                        {
                            "shard": customer_shard(agent.customer),
                            "agent_id": agent.agent_id,
                            "token_id": agent.token_id,
                            "customer": agent.customer,
                            "host": agent.host,
                            "host_id": host_id,
                            "after_seq": stored,
                            "max_seq": request.max_seq,
                            "received_at": now,
                            "points": request.points,
                            "payload": request.payload,
                        }
                    )
                    row_of.append(i)
                if advances:
                    conn.exec_driver_sql(self._sql["advance_agent"], list(advances.values()))
                if rows:
                    ids = (
                        conn.execute(
                            ingest_log.insert().returning(ingest_log.c.id, sort_by_parameter_order=True), rows
                        )
                        .scalars()
                        .all()
                    )
                    for i, log_id in zip(row_of, ids, strict=True):
                        out[i] = (requests[i].max_seq, int(log_id))
        except sa.exc.SQLAlchemyError as exc:  # the transaction failed: none of it is durable
            log.warning("ingest log append of %d batches failed: %s", len(requests), type(exc).__name__)
            return [o if isinstance(o, Exception) else exc for o in out]
        with self._cache_lock:
            self._host_ids.update(hosts_seen)
        return out

    def log_stats(self, shard_count: int = 1, shard_index: int = 0) -> LogStats:
        """The backlog of one materialiser's shard (all shards with the defaults)."""
        pending = ingest_log.c.quarantined_at.is_(None)
        where = [] if shard_count <= 1 else [(ingest_log.c.shard % shard_count) == shard_index]
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(ingest_log.c.points), 0),
                    sa.func.min(ingest_log.c.received_at),
                ).where(pending, *where)
            ).one()
            quarantined = conn.execute(
                sa.select(sa.func.count()).where(ingest_log.c.quarantined_at.is_not(None), *where)
            ).scalar_one()
        oldest = None if row[2] is None else float(row[2])
        return LogStats(int(row[0]), int(row[1]), oldest, int(quarantined))

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
        """Apply the oldest pending log rows of a shard in one transaction, deleting them in it.

        Rows go in id order (per agent: seq order). A row that cannot be applied (its
        payload no longer decodes, or the database refuses its data) is rolled back to
        its savepoint and quarantined (kept, with the error), so it never blocks the rows
        behind it and is never silently lost. ``cache`` maps log ids to batches the
        caller still holds decoded (the appending worker; left unchanged); other rows are decoded from
        their payload with ``decoder``. Observers hear of the applied batches after the
        commit. On PostgreSQL, a transaction-scoped advisory lock per customer shard keeps
        two materialisers (two collectors) from applying one customer's rows at once.
        """
        cache = {} if cache is None else cache
        where: list[Any] = [ingest_log.c.quarantined_at.is_(None)]
        if shard_count > 1:
            where.append((ingest_log.c.shard % shard_count) == shard_index)
        with self._engine.connect() as conn:  # nothing pending: no write transaction at all
            if conn.execute(sa.select(ingest_log.c.id).where(*where).limit(1)).first() is None:
                return Materialised()
        known: dict[int, dict[SeriesRef, int]] = {}
        created: dict[SeriesRef, int] = {}
        now = self._clock()
        with self._write() as conn:
            rows = self._log_rows(conn, where, max_batches)
            if rows and not self._sqlite:
                locked = {
                    shard
                    for shard in sorted({r.shard for r in rows})
                    if conn.execute(
                        sa.text("SELECT pg_try_advisory_xact_lock(:key)"),
                        {"key": (_LOG_LOCK_NS << 32) | int(shard)},
                    ).scalar_one()
                }
                # Re-read under the locks: another materialiser may have applied some meanwhile.
                ids = [r.id for r in rows if r.shard in locked]
                rows = self._log_rows(conn, [*where, ingest_log.c.id.in_(ids)], max_batches) if ids else []
            total = 0
            for n, r in enumerate(rows):
                total += int(r.points)
                if total >= max_points and n + 1 < len(rows):
                    rows = rows[: n + 1]
                    break
            committed, done = self._apply_log_rows(conn, rows, cache, decoder, known, created, now)
        self._remember_series(known)
        self._notify(committed)
        return done

    def _log_rows(self, conn: sa.Connection, where: list[Any], limit: int) -> list[Any]:
        c = ingest_log.c
        return list(
            conn.execute(
                sa.select(
                    c.id,
                    c.shard,
                    c.agent_id,
                    c.token_id,
                    c.customer,
                    c.host,
                    c.host_id,
                    c.after_seq,
                    c.max_seq,
                    c.points,
                    c.received_at,
                )
                .where(*where)
                .order_by(c.id)
                .limit(limit)
            ).all()
        )

    def _apply_log_rows(
        self,
        conn: sa.Connection,
        rows: Sequence[Any],
        cache: dict[int, IngestBatch],
        decoder: LogDecoder | None,
        known: dict[int, dict[SeriesRef, int]],
        created: dict[SeriesRef, int],
        now: float,
    ) -> tuple[list[Committed], Materialised]:
        """Apply log ``rows`` (in order) in ``conn``'s transaction; delete or quarantine each."""
        done = Materialised()
        committed: list[Committed] = []
        if not rows:
            return committed, done
        missing = [int(r.id) for r in rows if int(r.id) not in cache]
        payloads: dict[int, bytes] = {}
        if missing:
            payloads = {
                int(i): bytes(p)
                for i, p in conn.execute(
                    sa.select(ingest_log.c.id, ingest_log.c.payload).where(ingest_log.c.id.in_(missing))
                )
            }
            decoder = decoder or self._log_decoder
            if decoder is None:  # before any row is touched: nothing is quarantined for it
                raise StoreError("ingest log rows wait to be applied but the store has no log_decoder")
        bad: list[dict[str, Any]] = []
        for r in rows:
            log_id = int(r.id)
            agent = AgentIdentity(r.agent_id, r.customer, r.host, int(r.token_id))
            host_id = int(r.host_id)
            try:
                batch = cache.get(log_id)
                if batch is None:
                    assert decoder is not None
                    batch = decoder(payloads[log_id], float(r.received_at))
                with conn.begin_nested():
                    self._apply_entries(conn, agent, host_id, int(r.after_seq), batch, known, created, now)
            except _STORE_FAILED:
                raise  # the store, not this row, failed: the whole chunk is retried later
            except Exception as exc:
                # This row's data cannot be applied (refused, undecodable, or it hits a bug):
                # keep it aside with the reason, carry on with the rest.
                created.clear()
                log.exception("ingest log row %d (agent %s) quarantined", log_id, agent.agent_id)
                bad.append({"b_id": log_id, "b_at": now, "b_error": quarantine_reason(exc)})
                continue
            if created:
                known.setdefault(host_id, {}).update(created)
                created.clear()
            done.applied_ids.append(log_id)
            done.batches += 1
            done.points += int(r.points)
            committed.append(Committed(agent, host_id, int(r.after_seq), batch))
        if done.applied_ids:
            deleted = conn.execute(ingest_log.delete().where(ingest_log.c.id.in_(done.applied_ids))).rowcount
            if deleted != len(done.applied_ids):  # someone else applied them: undo ours
                raise StoreError(f"ingest log rows vanished while materialising ({deleted} deleted)")
        if bad:
            conn.execute(
                ingest_log.update()
                .where(ingest_log.c.id == sa.bindparam("b_id"))
                .values(quarantined_at=sa.bindparam("b_at"), error=sa.bindparam("b_error")),
                bad,
            )
            done.quarantined = len(bad)
        return committed, done

    def _remember_series(self, known: dict[int, dict[SeriesRef, int]]) -> None:
        """Cache series ids created by a committed transaction (never before: a rollback orphans them)."""
        if not known:
            return
        with self._cache_lock:
            fresh = sum(len(ids) for ids in known.values())
            if self._series_cached + fresh > _SERIES_CACHE_MAX:
                self._series_ids.clear()
                self._series_cached = 0
            for host_id, ids in known.items():
                self._series_ids.setdefault(host_id, {}).update(ids)
            self._series_cached += fresh

    def _write_results(
        self, conn: sa.Connection, agent: AgentIdentity, host_id: int, stored: int, batch: IngestBatch
    ) -> None:
        # Driver-level SQL with tuples: SQLAlchemy's per-row parameter processing cost more
        # than SQLite's own work here. findings_json is already JSON: stored as is.
        fresh: dict[int, tuple[Any, ...]] = {}
        newest: dict[str, tuple[Any, ...]] = {}
        for r in batch.results:
            if r.seq <= stored or r.seq in fresh:
                continue
            row = (
                host_id,
                r.check,
                agent.agent_id,
                r.seq,
                r.ts,
                r.layer,
                r.severity,
                r.key,
                r.summary,
                r.duration_ms,
                r.findings_json or "[]",
                r.inspection_id or None,
            )
            fresh[r.seq] = row
            current = newest.get(r.check)
            if current is None or (r.ts, r.seq) >= (current[4], current[3]):
                newest[r.check] = row
        if fresh:
            if self._sqlite:
                conn.exec_driver_sql(self._sql["insert_result"], list(fresh.values()))
                conn.exec_driver_sql(self._sql["upsert_latest"], list(newest.values()))
            else:  # one statement over column arrays each: a pipelined row per result cost 4x more
                for sql, rows in (("insert_result", fresh), ("upsert_latest", newest)):
                    conn.exec_driver_sql(
                        self._sql[sql], tuple(list(c) for c in zip(*rows.values(), strict=True))
                    )

    def _write_points(
        self,
        conn: sa.Connection,
        host_id: int,
        stored: int,
        refs: list[SeriesRef],
        values: list[float],
        spans: list[tuple[int, float, int]],
        known: dict[SeriesRef, int],
        created: dict[SeriesRef, int],
    ) -> None:
        """Insert the points of entries above ``stored``.

        ``known``: this host's series created earlier in this transaction (not cached
        until it commits); ``created`` receives the series this call creates.
        """
        cache = self._series_ids.get(host_id, {})
        rows: list[tuple[int, float, float]] = []
        append = rows.append
        holes: list[tuple[int, SeriesRef]] = []
        start = 0
        for seq, ts, end in spans:
            if seq > stored:
                for ref, value in zip(refs[start:end], values[start:end], strict=True):
                    sid = cache.get(ref) or known.get(ref)
                    if sid is None:
                        holes.append((len(rows), ref))
                        sid = 0
                    append((sid, ts, value))
            start = end
        if holes:
            created.update(self._create_series(conn, host_id, {ref: None for _, ref in holes}))
            for i, ref in holes:
                _, ts, value = rows[i]
                rows[i] = (created[ref], ts, value)
        if not rows:
            return
        if self._sqlite:
            conn.exec_driver_sql(self._sql["insert_points"], rows)
        else:
            ids, stamps, vals = (list(c) for c in zip(*rows, strict=True))
            conn.exec_driver_sql(self._sql["insert_points"], (ids, stamps, vals))

    def _create_series(
        self, conn: sa.Connection, host_id: int, missing: dict[SeriesRef, None]
    ) -> dict[SeriesRef, int]:
        rows = [
            {
                "host_id": host_id,
                "check": check,
                "name": name,
                "unit": unit,
                "labels": dict(labels),
                "labels_key": _labels_key(labels),
            }
            for check, name, unit, labels in missing
        ]
        conn.execute(
            self._insert(series).on_conflict_do_nothing(index_elements=["host_id", "name", "labels_key"]),
            rows,
        )
        names = sorted({ref[1] for ref in missing})
        found = {
            (r.name, r.labels_key): int(r.id)
            for r in conn.execute(
                sa.select(series.c.id, series.c.name, series.c.labels_key).where(
                    series.c.host_id == host_id, series.c.name.in_(names)
                )
            )
        }
        return {ref: found[(ref[1], _labels_key(ref[3]))] for ref in missing}

    def _write_inventory(
        self,
        conn: sa.Connection,
        agent: AgentIdentity,
        host_id: int,
        seq: int,
        ts: float,
        document: dict[str, Any],
        sha256: str,
    ) -> None:
        current = conn.execute(
            sa.select(inventory.c.document, inventory.c.sha256).where(inventory.c.host_id == host_id)
        ).first()
        if current is not None and current.sha256 == sha256:
            # The same document again (an agent re-sends it after a restart): no change to
            # record, but the entry's seq is recorded as the document's latest confirmation.
            conn.execute(
                inventory.update()
                .where(inventory.c.host_id == host_id, inventory.c.seq < seq)
                .values(agent_id=agent.agent_id, seq=seq, ts=ts)
            )
            return
        changes: list[tuple[str, str | None, str | None]] = []
        if current is not None:
            # The first inventory of a host is its baseline, not a list of upgrades.
            changes = product_changes(extract_products(current.document), extract_products(document))
        conn.execute(
            inventory_changes.insert().values(
                host_id=host_id,
                agent_id=agent.agent_id,
                seq=seq,
                ts=ts,
                sha256=sha256,
                previous_sha256=None if current is None else current.sha256,
                document=document,
                changes=[{"product": p, "from": a, "to": b} for p, a, b in changes],
            )
        )
        if changes:
            conn.execute(
                self._insert(product_upgrades).on_conflict_do_nothing(),
                [
                    {
                        "host_id": host_id,
                        "agent_id": agent.agent_id,
                        "product": product,
                        "from_version": before,
                        "to_version": after,
                        "ts": ts,
                        "seq": seq,
                    }
                    for product, before, after in changes
                ],
            )
        values = {"agent_id": agent.agent_id, "seq": seq, "ts": ts, "document": document, "sha256": sha256}
        stmt = self._insert(inventory).values(host_id=host_id, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["host_id"], set_=values))

    def record_gaps(self, agent: AgentIdentity, gap_rows: Sequence[GapRow]) -> list[int]:
        """Record dropped ranges; idempotent on (agent, first_seq). Returns every first_seq now settled.

        A range reported again from the same ``first_seq`` keeps its larger extent. A range
        overlapping one already stored from another ``first_seq`` is not stored (its seqs
        would be counted twice) but is settled all the same, so the agent stops reporting it.
        """
        for gap in gap_rows:
            if gap.first_seq < 1 or gap.last_seq < gap.first_seq or gap.count < 0:
                raise StoreError(f"invalid gap {gap.first_seq}..{gap.last_seq} (count {gap.count})")
        if not gap_rows:
            return []
        now = self._clock()
        with self._write() as conn:
            self._lock_agent(conn, agent)
            fresh = [g for g in gap_rows if not self._overlaps_stored_gap(conn, agent, g)]
            if len(fresh) < len(gap_rows):
                log.warning(
                    "agent %s reported %d gap(s) overlapping recorded ones; not counted twice",
                    agent.agent_id,
                    len(gap_rows) - len(fresh),
                )
            if not fresh:
                return sorted({g.first_seq for g in gap_rows})
            insert = self._insert(gaps)
            grown = insert.excluded
            # A range the agent reports again may have grown (it kept dropping): keep the
            # larger extent, never the older, smaller one.
            upsert = insert.on_conflict_do_update(
                index_elements=["agent_id", "first_seq"],
                set_={
                    "last_seq": sa.case(
                        (grown.last_seq > gaps.c.last_seq, grown.last_seq), else_=gaps.c.last_seq
                    ),
                    "count": sa.case(
                        (grown["count"] > gaps.c["count"], grown["count"]), else_=gaps.c["count"]
                    ),
                },
            )
            conn.execute(
                upsert,
                [
                    {
                        "agent_id": agent.agent_id,
                        "first_seq": g.first_seq,
                        "last_seq": g.last_seq,
                        "count": g.count,
                        "reason": g.reason[:64],
                        "dropped_at": g.dropped_at,
                        "recorded_at": now,
                    }
                    for g in fresh
                ],
            )
        return sorted({g.first_seq for g in gap_rows})

    def _overlaps_stored_gap(self, conn: sa.Connection, agent: AgentIdentity, gap: GapRow) -> bool:
        c = gaps.c
        return (
            conn.execute(
                sa.select(c.first_seq)
                .where(
                    c.agent_id == agent.agent_id,
                    c.first_seq != gap.first_seq,
                    c.first_seq <= gap.last_seq,
                    c.last_seq >= gap.first_seq,
                )
                .limit(1)
            ).first()
            is not None
        )

    def plain_insert_points(self, rows: Sequence[tuple[int, float, float]]) -> None:
        """Benchmark baseline: ``rows`` of (series_id, ts, value) in one transaction.

        The ingest's own points INSERT (executemany on SQLite, one unnest statement on
        PostgreSQL) taken alone: no decode, no agent row, no series lookup, no results.
        """
        with self._write() as conn:
            if self._sqlite:
                conn.exec_driver_sql(self._sql["insert_points"], list(rows))
            else:
                ids, stamps, values = (list(c) for c in zip(*rows, strict=True))
                conn.exec_driver_sql(self._sql["insert_points"], (ids, stamps, values))

    # ------------------------------------------------------------------ API tokens

    def create_api_token(
        self, name: str, role: str, customer: str | None = None, *, expires_at: float | None = None
    ) -> str:
        """Create an HTTP API token; the plain token is returned once and never stored.

        ``expires_at`` (epoch seconds): refused from then on; None: valid until revoked.
        """
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if role in STAFF_ROLES and customer is not None:
            raise StoreError(f"{role} tokens see every customer: do not pass a customer")
        if role not in STAFF_ROLES and customer is None:
            raise StoreError(f"a {role} token belongs to one customer: pass --customer")
        _check_name("token name", name)
        token = new_token(API_TOKEN_KIND)
        with self._write() as conn:
            customer_id = None if customer is None else self._ensure_customer(conn, customer)
            conn.execute(
                api_tokens.insert().values(
                    name=name,
                    role=role,
                    customer_id=customer_id,
                    token_hash=hash_token(token),
                    prefix=display_prefix(token),
                    created_at=self._clock(),
                    expires_at=expires_at,
                )
            )
        return token

    def authenticate_api_token(self, token: str) -> ApiPrincipal | None:
        digest = hash_token(token)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens, customers.c.slug)
                .outerjoin(customers, customers.c.id == api_tokens.c.customer_id)
                .where(api_tokens.c.token_hash == digest)
            ).first()
        if row is None or row.revoked_at is not None or not digest_matches(row.token_hash, digest):
            return None
        if row.expires_at is not None and row.expires_at <= self._clock():
            return None
        principal = ApiPrincipal(int(row.id), row.name, row.role, row.slug)
        self._touch_token(principal.token_id)
        return principal

    def _touch_token(self, token_id: int) -> None:
        """Update last_used_at at most once a minute per token (not a write per request)."""
        now = time.monotonic()
        with self._cache_lock:
            if now - self._token_last_used.get(token_id, -_LAST_USED_EVERY_S) < _LAST_USED_EVERY_S:
                return
            self._token_last_used[token_id] = now
        with self._write() as conn:
            conn.execute(
                api_tokens.update().where(api_tokens.c.id == token_id).values(last_used_at=self._clock())
            )

    def revoke_api_token(self, token_id: int) -> bool:
        with self._write() as conn:
            done = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            ).rowcount
        return bool(done)

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
