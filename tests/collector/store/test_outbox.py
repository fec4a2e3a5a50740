"""The store's notification outbox on SQLite and PostgreSQL: durability, dedup, the bound,
leases shared by several collectors, and the import of an earlier collector's local file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from collector.store import Store
from collector.store.outbox import LEGACY_OUTBOX_FILE, OutboxRepo, OutboxRow
from tests.collector.notify.factories import T0, case_event


def _row(n: int, now: float = T0) -> OutboxRow:
    return OutboxRow(
        id=f"n-{n}",
        kind="case",
        customer="acme",
        channel="webhook",
        target="ops",
        subject=f"C-{n}",
        payload=case_event(case_id=f"C-{n}").model_dump_json(),
        created_at=now + n,
        next_at=now + n,
    )


def test_add_claim_reschedule_delete(store: Store) -> None:
    box = OutboxRepo(store)
    added, dropped = box.add([_row(1), _row(2)], max_entries=10)
    assert added == ["n-1", "n-2"] and dropped == []
    [first] = box.claim(T0 + 1, lease_s=60, limit=10)
    assert (first.subject, first.next_at) == ("C-1", T0 + 61)  # leased until now + lease_s
    assert box.reschedule(first, attempts=1, next_at=T0 + 100, last_error="webhook ops: HTTP 500")
    assert [r.subject for r in box.claim(T0 + 50, lease_s=60, limit=10)] == ["C-2"]
    assert box.next_due() == T0 + 100  # C-2 is leased until T0 + 110
    [second] = [r for r in box.entries() if r.subject == "C-2"]
    assert box.delete(second)
    [left] = box.entries()
    assert (left.attempts, left.next_at, left.last_error) == (1, T0 + 100, "webhook ops: HTTP 500")
    assert box.count() == 1
    [again] = box.claim(T0 + 100, lease_s=60, limit=10)
    assert box.delete(again)
    assert box.count() == 0 and box.next_due() is None


def test_duplicates_of_pending_rows_are_ignored(store: Store) -> None:
    box = OutboxRepo(store)
    first, _ = box.add([_row(1)], max_entries=10)
    again, _ = box.add([_row(1, now=T0 + 999)], max_entries=10)
    assert first == ["n-1"] and again == []
    assert box.count() == 1 and box.entries()[0].created_at == T0 + 1


def test_bound_drops_the_oldest(store: Store) -> None:
    box = OutboxRepo(store)
    box.add([_row(1), _row(2)], max_entries=3)
    _, dropped = box.add([_row(3), _row(4), _row(5)], max_entries=3)
    assert [r.subject for r in dropped] == ["C-1", "C-2"]
    assert [r.subject for r in box.entries()] == ["C-3", "C-4", "C-5"]
    with pytest.raises(ValueError, match="at least 1"):
        box.add([_row(6)], max_entries=0)


def test_a_lease_keeps_others_off_until_it_runs_out(store: Store) -> None:
    one, other = OutboxRepo(store), OutboxRepo(Store(store.engine))  # two collectors, one store
    one.add([_row(1)], max_entries=10)
    [held] = one.claim(T0 + 1, lease_s=30, limit=10)
    assert other.claim(T0 + 30, lease_s=30, limit=10) == []  # still leased
    [taken] = other.claim(T0 + 31, lease_s=30, limit=10)  # the first collector died: taken over
    # The first collector wakes up: its lease is gone, so it changes nothing.
    assert not one.delete(held)
    assert not one.reschedule(held, attempts=1, next_at=T0 + 999, last_error="late")
    assert other.delete(taken)
    assert one.count() == 0


def test_concurrent_claims_lease_each_row_to_one_collector(store: Store) -> None:
    OutboxRepo(store).add([_row(n) for n in range(60)], max_entries=1000)
    repos = [OutboxRepo(Store(store.engine)) for _ in range(4)]
    won: list[list[str]] = [[] for _ in repos]
    start = threading.Barrier(len(repos))

    def take(i: int) -> None:
        start.wait()
        while batch := repos[i].claim(T0 + 100, lease_s=300, limit=3):
            won[i].extend(r.id for r in batch)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(repos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [row_id for ids in won for row_id in ids]
    assert sorted(every) == sorted(f"n-{n}" for n in range(60))  # each once, none twice


def test_rows_survive_a_killed_process(store: Store, tmp_path: Path) -> None:
    # A real crash: a child process queues a row and dies without closing anything.
    url = store.engine.url.render_as_string(hide_password=False)
    code = textwrap.dedent(
        f"""
        import os
        from collector.store import Store
        from collector.store.outbox import OutboxRepo
        from tests.collector.store.test_outbox import _row
        OutboxRepo(Store.open({url!r}, migrate=False)).add([_row(7)], max_entries=10)
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert proc.returncode == 9
    [row] = OutboxRepo(store).entries()
    assert (row.id, row.kind, row.payload) == ("n-7", "case", case_event(case_id="C-7").model_dump_json())


# The local outbox file of earlier collectors, as they wrote it (frozen here: it is the input).
_LEGACY_SCHEMA = """
CREATE TABLE outbox (
    id TEXT PRIMARY KEY, customer TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL,
    case_id TEXT NOT NULL, event TEXT NOT NULL, created_ts REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_ts REAL NOT NULL, last_error TEXT
);
"""


def legacy_outbox(directory: Path, rows: list[tuple[object, ...]]) -> Path:
    """A local outbox file in WAL mode with ``rows`` (left un-checkpointed, as a crash would)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LEGACY_OUTBOX_FILE
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_LEGACY_SCHEMA)
    db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()
    return path


def test_import_of_a_local_outbox_file(store: Store, tmp_path: Path) -> None:
    event = case_event().model_dump_json()
    path = legacy_outbox(
        tmp_path / "notify",
        [
            ("a1", "acme", "webhook", "ops", "C-1", event, T0, 2, T0 + 60, "HTTP 500"),
            ("a2", "acme", "email", "email", "C-1", event, T0 + 1, 0, T0 + 1, None),
        ],
    )
    box = OutboxRepo(store)
    box.add([_row(1)], max_entries=10)
    assert box.import_file(path, max_entries=10) == (2, [])
    assert not path.exists() and path.with_name(LEGACY_OUTBOX_FILE + ".imported").is_file()
    rows = {r.id: r for r in box.entries()}
    assert set(rows) == {"a1", "a2", "n-1"}
    a1 = rows["a1"]
    assert (a1.kind, a1.channel, a1.target, a1.subject, a1.payload) == (
        "case",
        "webhook",
        "ops",
        "C-1",
        event,
    )
    assert (a1.created_at, a1.attempts, a1.next_at, a1.last_error) == (T0, 2, T0 + 60, "HTTP 500")
    assert box.import_file(path, max_entries=10) is None  # done once


def test_an_interrupted_import_is_done_again_without_duplicates(store: Store, tmp_path: Path) -> None:
    event = case_event().model_dump_json()
    row = ("a1", "acme", "webhook", "ops", "C-1", event, T0, 0, T0, None)
    box = OutboxRepo(store)
    box.import_file(legacy_outbox(tmp_path / "one", [row]), max_entries=10)
    # The same file again (the rename was lost in a crash): nothing new, nothing twice.
    assert box.import_file(legacy_outbox(tmp_path / "two", [row]), max_entries=10) == (0, [])
    assert [r.id for r in box.entries()] == ["a1"]


def test_an_unreadable_local_file_is_a_clear_error_and_stays(store: Store, tmp_path: Path) -> None:
    path = tmp_path / LEGACY_OUTBOX_FILE
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(OSError, match="cannot read the local outbox"):
        OutboxRepo(store).import_file(path, max_entries=10)
    assert path.is_file()
