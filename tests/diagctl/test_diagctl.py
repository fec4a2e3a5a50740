"""diagctl against a real collector HTTP server (uvicorn in a thread, real sockets on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_text as agent_load_text
from collector.http.app import create_app
from collector.ingest.decode import decode_logged
from collector.store import HostFactsRow, IngestBatch, ResultRow, Scope, Store
from collector.store.fleet import FleetRepo
from collector.store.store import ColumnarBatch
from diagctl.client import parse_since
from diagctl.main import main
from tests.collector.http_server import free_port, serving

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('diagctl') / 'c.db'}", log_decoder=decode_logged)
    with serving(create_app(store, None)) as url:
        yield url, store
    store.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DIAG_SERVER", "DIAG_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIAGCTL_CONFIG", str(tmp_path / "no-config.yaml"))


@pytest.fixture(scope="module")
def engineer(server: tuple[str, Store]) -> str:
    _url, store = server
    agent, _ = store.enroll_agent("acme", host="web1", agent_id="acme-web1")
    store.hello(agent, HostFactsRow("web1", "0.1.0", {}, "debian", "12", "6.1.0", "x86_64", 2, 1 << 30, T0))
    rows = [
        ResultRow(1, T0, "host.load", "host", "WARN", "LOAD_HIGH", "Load per core 2.5", 1.0, "[]", None),
        ResultRow(
            2,
            T0 + 60,
            "storage.filesystem",
            "storage",
            "CRIT",
            "FS_NEARLY_FULL",
            "/ 97% full",
            3.0,
            "[]",
            None,
        ),
        ResultRow(3, time.time() - 60, "host.load", "host", "OK", "OK", "Load per core 0.3", 1.0, "[]", None),
    ]
    store.ingest(agent, IngestBatch(3, 1, rows, [], [], []))
    return store.create_api_token("eng", "engineer")


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


def test_hosts_table_and_json(server: tuple[str, Store], engineer: str) -> None:
    url, _ = server
    code, text = run(["--server", url, "--token", engineer, "hosts"])
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["CUSTOMER", "HOST", "WORST", "CHECKS", "LAST", "SEEN", "AGENT", "PROBLEMS"]
    assert lines[1].split()[:4] == ["acme", "web1", "CRIT", "CRIT=1"]
    assert lines[1].rstrip().endswith(" -")  # its clock is fine
    assert lines[1].index("web1") == lines[0].index("HOST")  # aligned columns
    code, text = run(["hosts", "--server", url, "--token", engineer, "--format", "json"])
    assert code == 0
    assert [h["name"] for h in json.loads(text)] == ["web1"]


def test_host_groups_latest_by_layer(
    server: tuple[str, Store], engineer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setenv("DIAG_SERVER", url)
    monkeypatch.setenv("DIAG_TOKEN", engineer)
    code, text = run(["host", "web1"])
    assert code == 0
    assert "debian 12, kernel 6.1.0, 2 CPUs" in text
    host_at, storage_at = text.index("\nHOST\n"), text.index("\nSTORAGE\n")
    assert host_at < storage_at
    assert "Load per core 0.3" in text[host_at:storage_at] and "LOAD_HIGH" not in text
    assert "FS_NEARLY_FULL" in text[storage_at:]


def test_quarantine_table_and_json(server: tuple[str, Store], engineer: str) -> None:
    from tests.collector.store.test_ingest_log import quarantine

    url, store = server
    code, text = run(["--server", url, "--token", engineer, "quarantine", "--customer", "initech"])
    assert (code, text.strip()) == (0, "nothing quarantined: every acknowledged batch was stored")
    agent, _ = store.enroll_agent("initech", host="q1", agent_id="initech-q1")
    quarantine(store, agent, [1, 2, 3])
    code, text = run(["--server", url, "--token", engineer, "quarantine", "--customer", "initech"])
    assert code == 0
    header, row = text.splitlines()
    assert header.split() == ["QUARANTINED", "CUSTOMER", "HOST", "AGENT", "SEQS", "POINTS", "ERROR"]
    assert row.split()[2:7] == ["initech", "q1", "initech-q1", "1-3", "6"]
    code, text = run(["--server", url, "--token", engineer, "--format", "json", "quarantine", "--host", "q1"])
    (doc,) = json.loads(text)
    assert (doc["agent_id"], doc["first_seq"], doc["last_seq"]) == ("initech-q1", 1, 3)
    assert "EntryBatch" in doc["error"]


def test_results_with_relative_since(server: tuple[str, Store], engineer: str) -> None:
    url, _ = server
    code, text = run(["--server", url, "--token", engineer, "--format", "json", "results", "--host", "web1"])
    assert code == 0 and [r["seq"] for r in json.loads(text)] == [3, 2, 1]
    code, text = run(
        [
            "--server",
            url,
            "--token",
            engineer,
            "--format",
            "json",
            "results",
            "--host",
            "web1",
            "--since",
            "1h",
        ]
    )
    assert code == 0 and [r["seq"] for r in json.loads(text)] == [3]
    code, text = run(
        ["--server", url, "--token", engineer, "results", "--host", "web1", "--check", "host.load"]
    )
    assert code == 0 and len(text.splitlines()) == 3


def test_config_file_is_the_last_resort(
    server: tuple[str, Store], engineer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    cfg = tmp_path / "diagctl.yaml"
    cfg.write_text(f"server: {url}\ntoken: {engineer}\n")
    monkeypatch.setenv("DIAGCTL_CONFIG", str(cfg))
    assert run(["hosts"])[0] == 0
    monkeypatch.setenv("DIAG_TOKEN", "dgt_wrong")  # the environment wins over the file
    assert run(["hosts"])[0] == 1


def test_enroll_list_revoke(server: tuple[str, Store], engineer: str) -> None:
    url, store = server
    base = ["--server", url, "--token", engineer]
    code, text = run(
        [*base, "agents", "enroll", "--customer", "globex", "--host", "app1", "--agent-id", "gx-1"]
    )
    assert code == 0
    # stdout is the agent's config file itself: it loads with the agent's own loader.
    loaded = agent_load_text(text, "enrolled.yaml")
    assert (loaded.config.agent.id, loaded.config.agent.customer) == ("gx-1", "globex")
    assert loaded.config.collector.address == "127.0.0.1:50051"
    assert loaded.config.collector.token is not None
    token = loaded.config.collector.token.get_secret_value()
    assert store.authenticate_agent(token) is not None
    assert "--token" not in text and "diag-agent run" not in text
    code, text = run([*base, "agents", "list", "--format", "json"])
    assert {a["agent_id"] for a in json.loads(text)} >= {"gx-1", "acme-web1"}
    code, text = run([*base, "agents", "revoke", "gx-1"])
    assert (code, text.strip()) == (0, "agent gx-1 revoked")
    code, text = run([*base, "agents", "list"])
    assert any(line.startswith("gx-1") and "revoked" in line for line in text.splitlines())


def test_enroll_writes_a_private_config_file_and_never_overwrites(
    server: tuple[str, Store], engineer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, store = server
    base = ["--server", url, "--token", engineer, "agents", "enroll", "--customer", "globex"]
    target = tmp_path / "agent.yaml"
    code, text = run([*base, "--host", "app2", "--agent-id", "gx-2", "-o", str(target)])
    assert (code, text) == (0, "")
    assert f"wrote its config to {target}" in capsys.readouterr().err
    assert target.stat().st_mode & 0o777 == 0o600
    loaded = agent_load_text(target.read_text(), str(target))
    assert loaded.config.collector.token is not None
    assert store.authenticate_agent(loaded.config.collector.token.get_secret_value()) is not None
    before = target.read_text()
    code, _ = run([*base, "--host", "app3", "-o", str(target)])
    assert code == 2 and f"{target} exists" in capsys.readouterr().err
    assert target.read_text() == before
    assert "app3" not in {a.host for a in FleetRepo(store).agents(Scope.everything())}  # nothing enrolled


def test_errors_say_what_to_do(
    server: tuple[str, Store], engineer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = server
    assert run(["hosts"])[0] == 2
    assert "export DIAG_SERVER=http://127.0.0.1:8080" in capsys.readouterr().err
    assert run(["--server", url, "hosts"])[0] == 2
    assert "diag-collector token create" in capsys.readouterr().err
    assert run(["--server", url, "--token", "dgt_bad", "hosts"])[0] == 1
    assert "rejected the API token (401): check --token" in capsys.readouterr().err
    dead = f"http://127.0.0.1:{free_port()}"
    assert run(["--server", dead, "--token", engineer, "hosts"])[0] == 1
    assert f"cannot connect to the collector at {dead}: is it running" in capsys.readouterr().err
    assert run(["--server", url, "--token", engineer, "host", "nosuch"])[0] == 1
    assert "404: no host 'nosuch'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["results"], id="missing --host"),
        pytest.param(["results", "--host", "h", "--since", "yesterday"], id="bad since"),
        pytest.param(["results", "--host", "h", "--limit", "0"], id="bad limit"),
        pytest.param(["frobnicate"], id="unknown command"),
        pytest.param(["agents"], id="missing subcommand"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--server", "http://127.0.0.1:9", "--token", "t", *argv])[0] == 2
    assert capsys.readouterr().err.strip()


def test_parse_since_forms() -> None:
    assert parse_since("2d", now=T0) == "2023-11-12T22:13:20+00:00"
    assert parse_since("2024-05-01T12:00:00", now=T0) == "2024-05-01T12:00:00+00:00"
    assert parse_since("2024-05-01T12:00:00+02:00") == "2024-05-01T12:00:00+02:00"


class ClosedPipe(io.StringIO):
    """Stands in for stdout piped into `head`, which has already exited."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_is_not_an_error(server: tuple[str, Store], engineer: str) -> None:
    url, _ = server
    assert main(["--server", url, "--token", engineer, "host", "web1"], out=ClosedPipe()) == 0


def test_hosts_table_names_an_agent_whose_clock_runs_ahead(server: tuple[str, Store], engineer: str) -> None:
    url, store = server
    agent, _ = store.enroll_agent("acme", host="web9", agent_id="acme-web9")
    skewed = ColumnarBatch(
        1, 1, [ResultRow(1, time.time(), "host.load", "host", "OK", "OK", "ok", 1.0, "[]", None)], [], [], []
    )
    skewed.clock_skew_s = 7200.0
    store.ingest(agent, skewed)
    code, text = run(["--server", url, "--token", engineer, "hosts"])
    assert code == 0
    [line] = [line for line in text.splitlines() if " web9 " in line]
    assert line.rstrip().endswith("clock 7,200 s ahead (fix the host's time sync)")
    code, text = run(["--server", url, "--token", engineer, "hosts", "--format", "json"])
    assert [h["clock_skew_s"] for h in json.loads(text) if h["name"] == "web9"] == [7200.0]
