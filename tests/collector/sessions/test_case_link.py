"""The sessions of a case: in ``GET /api/v1/cases/{id}`` (per role and customer) and in the
fault-analysis report's "Remote sessions" section, in English and Simplified Chinese.

Real store (SQLite and PostgreSQL), FastAPI's TestClient, the real report renderer (HTML).
"""

# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.ingest.decode import IngestLimits, decode
from collector.reports.fault import build_fault_report
from collector.reports.model import Customer, SignOff
from collector.reports.render import render_fault_analysis
from collector.store import Scope, Store
from collector.store.cases import CaseRepo
from collector.store.sessions import SessionRepo
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.reports.htmltext import ReportHTML
from tests.collector.sessions.conftest import T0, open_case
from tests.collector.sessions.test_store import _identity, _request

EVERYTHING = Scope.everything()


def _two_sessions(store: Store, case: str) -> tuple[str, str]:
    """One approved, connected, recorded and revoked; one only requested."""
    repo = SessionRepo(store)
    done = _request(repo, case, mode="diagnostic")
    repo.approve(EVERYTHING, done, actor="acme-admin", now=T0 + 10)
    row = repo.stream_opened(done, 1, "eng", T0 + 20)
    repo.stream_closed(row, bytes_in=10, bytes_out=20, reason="ended", now=T0 + 80)
    cast = b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "$ "]\n'
    chunk = pb.SessionRecordingChunk(
        session_id=done, index=0, data=cast, last=True, sha256=hashlib.sha256(cast).hexdigest()
    )
    batch = pb.EntryBatch(entries=[pb.Entry(seq=1, ts_unix_ms=int(T0 * 1000), recording=chunk)])
    store.ingest(_identity(store, "acme", "db1"), decode(batch, limits=IngestLimits(), after_seq=0))
    repo.revoke(EVERYTHING, done, actor="eng", reason="fixed", now=T0 + 90)
    waiting = _request(repo, case, mode="shell", now=T0 + 30)
    return done, waiting


def test_for_case_lists_the_case_sessions_in_scope(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    other = open_case(store, "acme", "db2")
    done, waiting = _two_sessions(store, case)
    _request(SessionRepo(store), other, host="db2")
    linked = SessionRepo(store).for_case(Scope.of("acme"), case)
    assert [c.record.id for c in linked] == [done, waiting]
    first, second = linked
    assert (first.started_at, first.ended_at, first.recording) == (T0 + 20, T0 + 90, True)
    assert first.record.approved_by == "acme-admin" and first.record.state == "revoked"
    assert (second.started_at, second.ended_at, second.recording) == (None, None, False)
    assert SessionRepo(store).for_case(Scope.of("globex"), case) == []


def test_the_case_api_shows_its_sessions_to_its_customer_only(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    done, waiting = _two_sessions(store, case)
    client = TestClient(create_app(store))
    tokens = {
        "engineer": store.create_api_token("eng", "engineer"),
        "admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
    }
    for who, token in tokens.items():
        r = client.get(f"/api/v1/cases/{case}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (who, r.text)
        rows = r.json()["sessions"]
        assert [s["id"] for s in rows] == [done, waiting], who
        assert rows[0]["engineer"] == "eng" and rows[0]["host"] == "db1"
        assert rows[0]["approved_by"] == "acme-admin" and rows[0]["recording"] is True
        assert rows[0]["started_at"] and rows[0]["ended_at"] and rows[0]["state"] == "revoked"
        assert rows[1]["started_at"] is None and rows[1]["recording"] is False and rows[1]["mode"] == "shell"
        assert "public_key" not in rows[0]  # the case lists sessions; the key is in /sessions/{id}
    for role in ("customer_admin", "viewer"):
        token = store.create_api_token(f"globex-{role}", role, customer="globex")
        r = client.get(f"/api/v1/cases/{case}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404, (role, r.text)
    # the case list stays light: no sessions there
    r = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {tokens['engineer']}"})
    assert r.status_code == 200 and "sessions" not in r.text


@pytest.mark.parametrize(
    ("lang", "section", "words"),
    [
        (
            "en",
            "Remote sessions",
            [
                "acme-admin",
                "Shell",
                "Diagnostic (read-only)",
                "Available",
                "Not available",
                "2023-11-14 22:14",
            ],
        ),
        ("zh-CN", "远程会话", ["acme-admin", "命令行", "可回放", "诊断（只读）", "2023-11-14 22:14"]),
    ],
)
def test_the_fault_report_lists_the_case_sessions(
    store: Store, lang: str, section: str, words: list[str]
) -> None:
    case = open_case(store, "acme", "db1")
    done, waiting = _two_sessions(store, case)
    record = CaseRepo(store).get(EVERYTHING, case)
    report = build_fault_report(store, record, Customer("Acme", "UTC"), SignOff("eng"), T0 + 100)
    assert [s.session_id for s in report.sessions] == [done, waiting]
    html = ReportHTML(render_fault_analysis(report, "html", lang).decode())  # type: ignore[arg-type]
    text = " ".join(html.texts)
    assert section in text
    rows = [r for r in html.rows if r and r[0] in (done, waiting)]
    assert len(rows) == 2, html.rows
    joined = " | ".join(" ".join(r) for r in rows)
    for word in words:
        assert word in joined, (word, joined)
    assert rows[0][1:3] == ["eng", "db1"]


def test_a_case_without_sessions_says_so(store: Store) -> None:
    case = open_case(store, "acme", "db1")
    record = CaseRepo(store).get(EVERYTHING, case)
    report = build_fault_report(store, record, Customer("Acme", "UTC"), SignOff("eng"), T0 + 100)
    assert report.sessions == ()
    for lang, sentence in (("en", "No remote session was opened"), ("zh-CN", "该工单没有开启远程会话")):
        html = render_fault_analysis(report, "html", lang).decode()  # type: ignore[arg-type]
        assert sentence in html
