from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.cli import _print_json, _print_table, main
from agent.records import CheckRecord
from agent.runner import CheckOutcome, OutcomeKind, RunReport, Skip
from agent.spool import KIND_HEALTH, KIND_RESULT, Spool
from checks.api import Result, Severity
from checks.registry import all_checks
from tests.agent.conftest import REPO, agent_cmd, agent_env

LAYERS = {"host", "network", "storage", "platform", "application"}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        agent_cmd(*args),
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.integration
def test_checks_json_has_the_documented_fields():
    proc = run_cli("checks", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    assert items, "at least one check ran"
    known = set(all_checks())
    for item in items:
        assert {"check", "layer", "severity", "key", "summary", "duration_ms", "metrics", "results"} <= set(
            item
        )
        assert item["check"] in known and item["layer"] in LAYERS
        assert item["severity"] in {"OK", "WARN", "CRIT", "UNKNOWN"}
        assert "skipped" not in item
        for metric in item["metrics"]:
            assert set(metric) == {"name", "value", "unit", "labels"}
    assert [i["check"] for i in items] == [n for n in all_checks() if n in {i["check"] for i in items}]


@pytest.mark.integration
def test_layer_and_check_filters():
    proc = run_cli("checks", "--format", "json", "--layer", "host", "--show-skipped")
    assert proc.returncode == 0, proc.stderr
    assert {i["layer"] for i in json.loads(proc.stdout)} == {"host"}
    proc = run_cli("checks", "--format", "json", "--check", "host.load")
    assert [i["check"] for i in json.loads(proc.stdout)] == ["host.load"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["checks", "--layer", "hots"], "invalid choice: 'hots'", id="unknown layer"),
        pytest.param(["checks", "--check", "host.lod"], "did you mean host.load", id="unknown check"),
        pytest.param(["checks", "--format", "xml"], "invalid choice: 'xml'", id="bad format"),
        pytest.param(["run"], "--config", id="run needs a config"),
        pytest.param(["run", "--config", "x", "--interval", "-3"], "expected seconds", id="bad interval"),
        pytest.param([], "COMMAND", id="no command"),
    ],
)
def test_bad_arguments_exit_2(args, expected, capsys):
    assert main(args) == 2
    assert expected in capsys.readouterr().err


def test_unknown_check_lists_the_valid_ones(capsys):
    assert main(["checks", "--check", "nope.nope"]) == 2
    assert "valid checks: host." in capsys.readouterr().err


def test_check_config_reports_errors_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  interval_s: often\ncollector: {token: [hunter2]}\nchecks:\n  host.lod: {}\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: agent.interval_s: " in err
    assert "did you mean host.load" in err
    assert "hunter2" not in err
    assert "3 problem(s) found" in err


def test_check_config_ok(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("checks:\n  host.load: {params: {levels_per_core: [3, 5]}}\n")
    assert main(["check-config", str(good)]) == 0
    enabled = sum(1 for c in all_checks().values() if c.default_enabled)
    assert capsys.readouterr().out == f"OK: {enabled} checks enabled (of {len(all_checks())} known)\n"


def test_checks_with_a_bad_config_exits_2_and_says_what_to_do(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: [\n")
    assert main(["checks", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "YAML syntax error at line 2" in err and "diag-agent check-config" in err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read the config file: No such file or directory" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("diag-agent 0.1.0")


def _report() -> RunReport:
    rec = CheckRecord.from_outputs(
        "host.load", "host", 1.0, 1.25, [Result(Severity.WARN, "LOAD_HIGH", "Load per core: 2.5")], []
    )
    skip = Skip("network.tcp_connect", "network", "no endpoints configured")
    outcomes = (
        CheckOutcome("host.load", OutcomeKind.OK, rec, None, None, 0.0, 0.001),
        CheckOutcome("network.tcp_connect", OutcomeKind.SKIP, None, skip, {}, 0.0, 0.0),
    )
    return RunReport((rec,), (skip,), outcomes, ())


def test_table_is_aligned_and_shows_skips():
    out = io.StringIO()
    _print_table(_report(), out)
    assert out.getvalue() == textwrap.dedent(
        """\
        LAYER    CHECK                SEVERITY  KEY        SUMMARY                  DURATION
        host     host.load            WARN      LOAD_HIGH  Load per core: 2.5         1.2 ms
        network  network.tcp_connect  SKIP      -          no endpoints configured         -
        """
    )


def test_table_colours_only_a_tty():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    _print_table(_report(), out)
    assert "\033[33mWARN" in out.getvalue()


def test_json_shows_skips_only_when_asked(capsys):
    _print_json(_report(), show_skipped=False)
    assert [i["check"] for i in json.loads(capsys.readouterr().out)] == ["host.load"]
    _print_json(_report(), show_skipped=True)
    items = json.loads(capsys.readouterr().out)
    assert items[1] == {
        "check": "network.tcp_connect",
        "layer": "network",
        "severity": "SKIP",
        "key": "SKIPPED",
        "summary": "no endpoints configured",
        "duration_ms": 0.0,
        "results": [],
        "metrics": [],
        "skipped": True,
    }


HEAVY = ("paramiko", "grpc", "sqlalchemy", "fastapi")
STREAM_ONLY = ("h2", "google", "ssl", "_ssl", "_hashlib")
"""Loaded by ``run`` only to stream (h2), and only with TLS (ssl); never the protobuf runtime
(``google``: agent.wire encodes by hand) nor hashlib's OpenSSL."""
PROBE_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from agent.cli import main
    rc = main(sys.argv[1:])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
    stream = sorted({{m.split(".")[0] for m in sys.modules if m.split(".")[0] in {stream!r}}})
    built = None
    if "checks.registry" in sys.modules:
        from checks.registry import all_checks
        built = sorted(n for n, c in all_checks().items() if c.params.__pydantic_complete__)
    print(json.dumps({{"rc": rc, "heavy": heavy, "stream": stream, "built": built}}), file=sys.stderr)
    """
).format(heavy=set(HEAVY), stream=set(STREAM_ONLY))


def _probe_imports(tmp_path: Path, args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE_IMPORTS, *args],
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report: dict[str, Any] = json.loads(proc.stderr.strip().splitlines()[-1])
    return report


@pytest.mark.integration
@pytest.mark.parametrize("command", ["checks", "run"])
def test_no_heavy_imports(tmp_path, command):
    config = tmp_path / "agent.yaml"
    config.write_text("agent: {id: light}\nchecks: {host.load: {params: {levels_per_core: [3, 5]}}}\n")
    args = (
        ["checks", "--format", "json"]
        if command == "checks"
        else ["run", "--config", str(config), "--state-dir", str(tmp_path / "s"), "--once"]
    )
    report = _probe_imports(tmp_path, args)
    assert report["rc"] == 0 and report["heavy"] == []
    if command == "run":
        # No collector: nothing of the stream is loaded. Only the params validator of the
        # one check whose params the config sets is built (the others take their defaults).
        assert report["stream"] == []
        assert report["built"] == ["host.load"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_streaming_run_loads_h2_but_neither_grpc_protobuf_nor_ssl_without_tls(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text(f"agent: {{id: light}}\ncollector: {{address: '127.0.0.1:{free_port()}', token: t}}\n")
    args = ["run", "--config", str(config), "--state-dir", str(tmp_path / "s"), "--once"]
    report = _probe_imports(tmp_path, args)
    assert report["rc"] == 0 and report["heavy"] == []
    assert report["stream"] == ["h2"]
    assert report["built"] == []


@pytest.mark.integration
def test_run_once_spools_results_health_and_never_logs_the_token(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("agent: {id: once}\ncollector: {token: from-file-secret}\n")
    proc = run_cli(
        "run",
        "--config",
        str(config),
        "--state-dir",
        str(tmp_path / "s"),
        "--once",
        "--token",
        "cli-secret-token",
        "--collector",
        "127.0.0.1:50051",
        "--log-level",
        "debug",
    )
    assert proc.returncode == 0, proc.stderr
    assert "secret" not in proc.stderr
    with Spool(tmp_path / "s" / "spool.db") as spool:
        kinds = [e.kind for e in spool.read_from(0, 10_000)]
    assert kinds.count(KIND_RESULT) >= 10 and kinds.count(KIND_HEALTH) == 1


def test_run_with_an_unwritable_state_dir_exits_1(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = tmp_path / "agent.yaml"
    config.write_text("")
    assert main(["run", "--config", str(config), "--state-dir", str(blocker / "sub"), "--once"]) == 1
    assert "pass --state-dir DIR" in capsys.readouterr().err


@pytest.mark.integration
def test_python_dash_m_agent_works():
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "--version"],
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "diag-agent 0.1.0")


@pytest.mark.integration
def test_inventory_json():
    proc = run_cli("inventory", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert isinstance(facts, dict) and facts


def test_inventory_table(capsys):
    assert main(["inventory"]) == 0
    assert capsys.readouterr().out.strip()


TOKEN = "dga_Q2hhbmdlTWVCdXRLZWVwTWVTZWNyZXQwMTIzNDU2Nzg5"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"collector: {{tokn: {TOKEN}}}\n", id="misspelt token key"),
        pytest.param(
            f"collector: {{address: '127.0.0.1:50051', toke: '{TOKEN}'}}\n", id="another misspelling"
        ),
        pytest.param(f"colector: {{token: {TOKEN}}}\n", id="misspelt section"),
        pytest.param(f"agent: {{labels: {{env: prod}}, ids: {TOKEN}}}\n", id="unknown key, unrelated name"),
        pytest.param(f"collector: {{address: {TOKEN}}}\n", id="token pasted as the address"),
        pytest.param(f"agent: {{interval_s: {TOKEN}}}\n", id="token pasted as a number"),
        pytest.param(f"collector: {{{TOKEN}: x}}\n", id="token pasted as a key"),
        pytest.param(
            f"checks: {{application.http: {{params: {{endpoints: [{{name: a, url: 'http://x/', hedaers: "
            f"'Authorization: Bearer {TOKEN}'}}]}}}}}}\n",
            id="unknown check param",
        ),
        pytest.param(
            "collector: {address: 'postgresql://diag:s3cretpass@db/x'}\n", id="credentials in a URL"
        ),
    ],
)
def test_check_config_never_echoes_a_secret(tmp_path, capsys, text):
    config = tmp_path / "agent.yaml"
    config.write_text(text)
    assert main(["check-config", str(config)]) == 2
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert f"{config}: " in err  # the problem is still named, by file and path
    for fragment in (TOKEN, TOKEN[4:20], "s3cretpass"):
        assert fragment not in err, err
