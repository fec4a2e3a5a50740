"""SessionRepo and the audit chain on a real store (SQLite and PostgreSQL), and the spooled
session entries through the real ingest path (decode + Store.ingest), stored exactly once."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from collector.ingest.decode import IngestError, IngestLimits, decode
from collector.store import AgentIdentity, Scope, Store
from collector.store.errors import Conflict, NotFound, StoreError
from collector.store.schema_sessions import session_audit, session_recording_chunks
from collector.store.sessions import SessionRepo
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.sessions.conftest import KEY, T0, open_case

EVERYTHING = Scope.everything()


def _request(repo: SessionRepo, case: str, host: str = "db1", **kw: object) -> str:
    args: dict[str, object] = {
        "engineer": "eng",
        "host": host,
        "case_id": case,
        "reason": "disk full on /var",
        "mode": "shell",
        "public_key": KEY,
        "duration_s": 1800,
        "now": T0 + 10,
    }
    args.update(kw)
    return repo.request(EVERYTHING, **args).id  # type: ignore[arg-type]


def _identity(store: Store, customer: str, host: str) -> AgentIdentity:
    agent_id = f"{customer}-{host}"
    with store.engine.connect() as conn:
        token_id = conn.execute(
            sa.text("SELECT id FROM agents WHERE agent_id = :a"), {"a": agent_id}
        ).scalar_one()
    return AgentIdentity(agent_id, customer, host, int(token_id))


def test_request_approve_revoke_and_scoping(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    other_case = open_case(store, "globex", "erp1")
    repo = SessionRepo(store)
    sid = _request(repo, case)
    s = repo.get(Scope.of("acme"), sid)
    assert (s.state, s.approval, s.host, s.agent_id, s.customer) == (
        "requested",
        "",
        "db1",
        "acme-db1",
        "acme",
    )
    assert s.not_after == T0 + 10 + 1800
    with pytest.raises(NotFound):  # another customer's people see nothing
        repo.get(Scope.of("globex"), sid)
    assert repo.list(Scope.of("globex")) == []
    # a host of another customer than the case's is refused, as is an unknown case
    with pytest.raises(NotFound, match="customer 'acme'"):
        _request(repo, case, host="erp1")
    with pytest.raises(NotFound):
        _request(repo, "C-acme-99")
    with pytest.raises(NotFound):  # the case exists, but not for a globex-scoped caller
        repo.request(
            Scope.of("globex"),
            engineer="x",
            host="db1",
            case_id=case,
            reason="r",
            mode="shell",
            public_key=KEY,
            duration_s=600,
            now=T0,
        )
    with pytest.raises(StoreError, match="mode"):
        _request(repo, case, mode="root")
    # the requesting engineer cannot approve; a customer_admin can, once
    with pytest.raises(Conflict, match="cannot approve"):
        repo.approve(EVERYTHING, sid, actor="eng", now=T0 + 20)
    approved = repo.approve(Scope.of("acme"), sid, actor="acme-admin", now=T0 + 20)
    assert (approved.state, approved.approval, approved.approved_by) == (
        "approved",
        "customer_admin",
        "acme-admin",
    )
    with pytest.raises(Conflict, match="already approved"):
        repo.approve(Scope.of("acme"), sid, actor="acme-admin", now=T0 + 21)
    with pytest.raises(Conflict, match="only a requested"):
        repo.deny(Scope.of("acme"), sid, actor="acme-admin", reason="no", now=T0 + 22)
    revoked = repo.revoke(Scope.of("acme"), sid, actor="acme-admin", reason="done", now=T0 + 30)
    assert (revoked.state, revoked.ended_by, revoked.end_reason) == ("revoked", "acme-admin", "done")
    assert repo.grants_for_agent("acme-db1", T0 + 31) == []
    assert [s.case_id for s in repo.list(EVERYTHING, case_id=case)] == [case]
    assert other_case.startswith("C-globex")
    events = [r.event for r in repo.audit(Scope.of("acme"), sid)]
    assert events == ["requested", "approved", "revoked"]


def test_expiry_and_grants_on_reconnect(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    repo = SessionRepo(store)
    short = _request(repo, case, duration_s=60)
    long = _request(repo, case, duration_s=3600)
    denied = _request(repo, case)
    repo.deny(EVERYTHING, denied, actor="acme-admin", reason="not now", now=T0 + 11)
    assert {s.id for s in repo.grants_for_agent("acme-db1", T0 + 20)} == {short, long}
    expired = repo.expire_due(T0 + 10 + 60)
    assert [s.id for s in expired] == [short] and expired[0].state == "expired"
    assert repo.expire_due(T0 + 10 + 61) == []  # once
    assert [s.id for s in repo.grants_for_agent("acme-db1", T0 + 100)] == [long]
    with pytest.raises(Conflict):
        repo.approve(EVERYTHING, short, actor="acme-admin", now=T0 + 100)


def test_agent_status_pins_the_host_key_and_host_approval(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    open_case(store, "globex", "erp1")
    repo = SessionRepo(store)
    sid = _request(repo, case)
    kw = {"reason": "", "host_key": "ssh-ed25519 AAAAhost", "host_key_sha256": "SHA256:abc", "now": T0 + 12}
    # another agent cannot touch this session
    assert repo.agent_status("globex-erp1", sid, state="approved", approved_by="", **kw) is None  # type: ignore[arg-type]
    assert repo.get(EVERYTHING, sid).connectable(T0 + 13) is not None
    s = repo.agent_status("acme-db1", sid, state="approved", approved_by="root@db1", **kw)  # type: ignore[arg-type]
    assert s is not None
    assert (s.state, s.approval, s.approved_by, s.host_key_sha256) == (
        "approved",
        "host",
        "root@db1",
        "SHA256:abc",
    )
    assert s.connectable(T0 + 13) is None
    assert s.connectable(T0 + 10 + 1800) == f"session {sid} has expired"
    kw["host_key"] = "ssh-ed25519 AAAAother"
    kept = repo.agent_status("acme-db1", sid, state="approved", approved_by="", **kw)  # type: ignore[arg-type]
    assert kept is not None and kept.host_key == "ssh-ed25519 AAAAhost"
    assert repo.audit(EVERYTHING, sid)[-1].event == "host_key_mismatch"
    with pytest.raises(StoreError):
        repo.agent_status("acme-db1", sid, state="bogus", approved_by="", **kw)  # type: ignore[arg-type]


def test_audit_chain_detects_a_changed_removed_or_reordered_row(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    open_case(store, "globex", "erp1")
    repo = SessionRepo(store)
    sid = _request(repo, case)
    repo.approve(EVERYTHING, sid, actor="acme-admin", now=T0 + 20)
    repo.refused(sid, "collector", "connect: not approved by the agent", T0 + 21)
    repo.revoke(EVERYTHING, sid, actor="eng", reason="done", now=T0 + 30)
    gsid = _request(repo, open_case(store, "globex", "erp2"), host="erp2")
    verdicts = {v.customer: (v.rows, v.first_bad_seq) for v in repo.verify_audit(EVERYTHING)}
    assert verdicts == {"acme": (4, None), "globex": (1, None)}
    assert [v.customer for v in repo.verify_audit(Scope.of("globex"))] == ["globex"]
    assert gsid

    def tamper(stmt: sa.Executable) -> None:
        with store.engine.begin() as conn:
            conn.execute(stmt)

    acme = sa.select(sa.func.min(session_audit.c.customer_id)).where(session_audit.c.session_id == sid)
    with store.engine.connect() as conn:
        cid = conn.execute(acme).scalar_one()
    row = sa.and_(session_audit.c.customer_id == cid, session_audit.c.seq == 3)
    original = repo.audit(EVERYTHING, sid)[2].detail
    # one byte of one row's detail changed
    tamper(session_audit.update().where(row).values(detail="X" + original[1:]))
    assert [(v.customer, v.first_bad_seq) for v in repo.verify_audit(EVERYTHING)] == [
        ("acme", 3),
        ("globex", None),
    ]
    tamper(session_audit.update().where(row).values(detail=original))
    assert repo.verify_audit(Scope.of("acme"))[0].first_bad_seq is None
    # a row removed: the next one no longer follows
    tamper(
        session_audit.delete().where(sa.and_(session_audit.c.customer_id == cid, session_audit.c.seq == 2))
    )
    assert repo.verify_audit(Scope.of("acme"))[0].first_bad_seq == 3


def test_audit_chain_detects_rows_swapped(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    repo = SessionRepo(store)
    sid = _request(repo, case)
    repo.approve(EVERYTHING, sid, actor="acme-admin", now=T0 + 20)
    repo.revoke(EVERYTHING, sid, actor="eng", reason="done", now=T0 + 30)
    with store.engine.begin() as conn:  # seq 2 and 3 trade places (hashes and all)
        conn.execute(session_audit.update().where(session_audit.c.seq == 2).values(seq=-2))
        conn.execute(session_audit.update().where(session_audit.c.seq == 3).values(seq=2))
        conn.execute(session_audit.update().where(session_audit.c.seq == -2).values(seq=3))
    assert repo.verify_audit(EVERYTHING)[0].first_bad_seq == 2


def _entries_batch(sid: str, start: int, cast: bytes, foreign: str) -> pb.EntryBatch:
    ts = int(T0 * 1000)
    half = len(cast) // 2
    return pb.EntryBatch(
        entries=[
            pb.Entry(
                seq=start,
                ts_unix_ms=ts,
                session_event=pb.SessionEvent(
                    session_id=sid, event="started", actor="root@db1", detail="pty"
                ),
            ),
            pb.Entry(
                seq=start + 1,
                ts_unix_ms=ts,
                recording=pb.SessionRecordingChunk(session_id=sid, index=0, data=cast[:half]),
            ),
            pb.Entry(
                seq=start + 2,
                ts_unix_ms=ts,
                session_event=pb.SessionEvent(session_id=foreign, event="started"),
            ),
            pb.Entry(
                seq=start + 3,
                ts_unix_ms=ts,
                recording=pb.SessionRecordingChunk(
                    session_id=sid,
                    index=1,
                    data=cast[half:],
                    last=True,
                    sha256=hashlib.sha256(cast).hexdigest(),
                ),
            ),
        ]
    )


def test_spooled_session_entries_are_stored_exactly_once(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    gcase = open_case(store, "globex", "erp1")
    repo = SessionRepo(store)
    sid = _request(repo, case)
    foreign = _request(repo, gcase, host="erp1")
    cast = b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "$ "]\n[0.5, "i", "ls\\r"]\n'
    agent = _identity(store, "acme", "db1")
    batch = _entries_batch(sid, 1, cast, foreign)
    assert store.ingest(agent, decode(batch, limits=IngestLimits(), after_seq=0)) == 4
    assert store.ingest(agent, decode(batch, limits=IngestLimits(), after_seq=0)) == 4  # a replay
    rec = repo.recording(Scope.of("acme"), sid)
    assert rec.content == cast and rec.verified and rec.sha256 == hashlib.sha256(cast).hexdigest()
    events = [r.event for r in repo.audit(EVERYTHING, sid)]
    assert events == ["requested", "agent_started", "recording_stored"]
    assert [r.event for r in repo.audit(EVERYTHING, foreign)] == ["requested"]  # not the acme agent's
    with store.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(session_recording_chunks)).scalar_one() == 2
        )
    with pytest.raises(NotFound):
        repo.recording(Scope.of("globex"), sid)
    assert all(v.first_bad_seq is None for v in repo.verify_audit(EVERYTHING))


def test_a_recording_that_does_not_match_its_sha256_is_kept_but_marked(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    repo = SessionRepo(store)
    sid = _request(repo, case)
    chunk = pb.SessionRecordingChunk(session_id=sid, index=0, data=b"[1]\n", last=True, sha256="0" * 64)
    batch = pb.EntryBatch(entries=[pb.Entry(seq=1, ts_unix_ms=int(T0 * 1000), recording=chunk)])
    store.ingest(_identity(store, "acme", "db1"), decode(batch, limits=IngestLimits(), after_seq=0))
    assert not repo.recording(EVERYTHING, sid).verified
    assert repo.audit(EVERYTHING, sid)[-1].event == "recording_invalid"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (pb.Entry(recording=pb.SessionRecordingChunk(session_id="../x", index=0)), "not a session id"),
        (
            pb.Entry(recording=pb.SessionRecordingChunk(session_id="s-1", data=b"x" * (1024 * 1024 + 1))),
            "more than",
        ),
        (pb.Entry(recording=pb.SessionRecordingChunk(session_id="s-1", last=True, sha256="nope")), "sha256"),
        (pb.Entry(recording=pb.SessionRecordingChunk(session_id="s-1", sha256="0" * 64)), "not the last"),
        (pb.Entry(session_event=pb.SessionEvent(session_id="s-1", event="DROP TABLE")), "snake_case"),
        (pb.Entry(session_event=pb.SessionEvent(session_id="s-1", event="x", detail="a\x00b")), "NUL"),
    ],
)
def test_malformed_session_entries_are_refused_naming_the_field(entry: pb.Entry, message: str) -> None:
    entry.seq, entry.ts_unix_ms = 1, int(T0 * 1000)
    with pytest.raises(IngestError, match=message):
        decode(pb.EntryBatch(entries=[entry]), limits=IngestLimits(), after_seq=0)


def test_a_chunk_spooled_twice_under_new_seqs_is_stored_once(store: Store) -> None:
    """After a crash the agent may spool a chunk again (a new seq, the same (session, index)):
    the collector keeps the first copy and still assembles and verifies the recording."""
    case = open_case(store, "acme", "db1")
    repo = SessionRepo(store)
    sid = _request(repo, case)
    cast = b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "$ "]\n[0.5, "o", "ok\\r\\n"]\n'
    first, second = cast[:30], cast[30:]
    ts = int(T0 * 1000)
    agent = _identity(store, "acme", "db1")

    def chunk(seq: int, index: int, data: bytes, last: bool = False) -> pb.Entry:
        sha = hashlib.sha256(cast).hexdigest() if last else ""
        rec = pb.SessionRecordingChunk(session_id=sid, index=index, data=data, last=last, sha256=sha)
        return pb.Entry(seq=seq, ts_unix_ms=ts, recording=rec)

    store.ingest(
        agent, decode(pb.EntryBatch(entries=[chunk(1, 0, first)]), limits=IngestLimits(), after_seq=0)
    )
    again = pb.EntryBatch(
        entries=[chunk(2, 0, first), chunk(3, 1, second, last=True), chunk(4, 1, second, True)]
    )
    store.ingest(agent, decode(again, limits=IngestLimits(), after_seq=1))
    with store.engine.connect() as conn:
        idx = conn.execute(
            sa.select(session_recording_chunks.c.idx).where(session_recording_chunks.c.session_id == sid)
        ).scalars()
        assert sorted(idx) == [0, 1]
    rec = repo.recording(EVERYTHING, sid)
    assert rec.content == cast and rec.verified
    assert [r.event for r in repo.audit(EVERYTHING, sid)].count("recording_stored") == 1
