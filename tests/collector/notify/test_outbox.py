"""The SQLite outbox: durability, dedup, the bound, bad rows."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

from collector.notify import Outbox, OutboxEntry, OutboxError
from collector.notify.outbox import OUTBOX_FILE
from tests.collector.notify.factories import T0, case_event


def _entry(n: int, now: float = T0) -> OutboxEntry:
    return OutboxEntry.new(case_event(case_id=f"C-{n}"), "webhook", "ops", now=now + n)


def test_add_due_reschedule_delete(tmp_path):
    box = Outbox(tmp_path, max_entries=10)
    added, dropped = box.add([_entry(1), _entry(2)])
    assert len(added) == 2 and dropped == []
    assert [e.event.case_id for e in box.due(now=T0 + 1, limit=10)[0]] == ["C-1"]
    box.reschedule(added[0], attempts=1, next_ts=T0 + 100, last_error="webhook ops: HTTP 500")
    due, _ = box.due(now=T0 + 50, limit=10)
    assert [e.event.case_id for e in due] == ["C-2"]
    assert box.next_due_ts() == T0 + 2
    box.delete(added[1])
    [left] = box.entries()
    assert (left.attempts, left.next_ts, left.last_error) == (1, T0 + 100, "webhook ops: HTTP 500")
    box.delete(added[0])
    assert len(box) == 0 and box.next_due_ts() is None
    box.close()


def test_duplicates_of_pending_entries_are_ignored(tmp_path):
    box = Outbox(tmp_path, max_entries=10)
    first, _ = box.add([_entry(1)])
    again, _ = box.add([_entry(1, now=T0 + 999)])
    assert len(first) == 1 and again == []
    assert len(box) == 1
    box.close()


def test_bound_drops_the_oldest(tmp_path):
    box = Outbox(tmp_path, max_entries=3)
    box.add([_entry(1), _entry(2)])
    _, dropped = box.add([_entry(3), _entry(4), _entry(5)])
    assert [e.event.case_id for e in dropped] == ["C-1", "C-2"]
    assert [e.event.case_id for e in box.entries()] == ["C-3", "C-4", "C-5"]
    box.close()


def test_entries_survive_a_killed_process(tmp_path):
    # A real crash: a child process queues an entry and dies without closing anything.
    code = textwrap.dedent(
        f"""
        import os, pathlib
        from collector.notify import Outbox, OutboxEntry
        from tests.collector.notify.factories import case_event
        box = Outbox(pathlib.Path({str(tmp_path)!r}), max_entries=10)
        box.add([OutboxEntry.new(case_event(), "email", "email", now=1.0)])
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert proc.returncode == 9
    box = Outbox(tmp_path, max_entries=10)
    [entry] = box.entries()
    assert entry.event == case_event() and entry.channel == "email"
    box.close()


def test_file_is_private(tmp_path):
    box = Outbox(tmp_path / "notify", max_entries=1)
    box.close()
    assert stat.S_IMODE((tmp_path / "notify").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "notify" / OUTBOX_FILE).stat().st_mode) == 0o600


def test_unreadable_rows_are_discarded_not_fatal(tmp_path):
    box = Outbox(tmp_path, max_entries=10)
    box.add([_entry(1), _entry(2)])
    box.close()
    db = sqlite3.connect(tmp_path / OUTBOX_FILE)
    db.execute("UPDATE outbox SET event = '{\"event\": \"exploded\"' WHERE case_id = 'C-1'")
    db.commit()
    db.close()
    box = Outbox(tmp_path, max_entries=10)
    due, bad = box.due(now=T0 + 10, limit=10)
    assert bad == 1 and [e.event.case_id for e in due] == ["C-2"]
    assert len(box) == 1
    box.close()


def test_newer_schema_and_unusable_paths_are_clear_errors(tmp_path):
    db = sqlite3.connect(tmp_path / OUTBOX_FILE)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(OutboxError, match="newer than this collector"):
        Outbox(tmp_path, max_entries=1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot open the outbox"):
        Outbox(blocker / "sub", max_entries=1)
    with pytest.raises(ValueError, match="at least 1"):
        Outbox(tmp_path / "ok", max_entries=0)
