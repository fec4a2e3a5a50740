"""Terminal escape injection and display width in every human output (issue 13 item 8, issue 17).

Agent-controlled text (a plugin's first line, summaries, product versions) carrying
an OSC title change, an OSC 52 clipboard write, CSI sequences, C1 controls and a bidi
override goes through the real ``diag-agent checks`` (a real plugin process) and
through ``diagctl`` against a real collector HTTP server; the human outputs show each
control character as a visible escape, the JSON outputs keep the text exact, and
Chinese text lines up in the tables of both CLIs.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from collector.http.app import create_app
from collector.store import HostFactsRow, IngestBatch, ResultRow, Store
from diagconfig.terminal import TerminalFormatter, cell_text, display_width, table_lines, terminal_text
from diagctl.client import table
from diagctl.main import main as diagctl
from tests.collector.http_server import serving
from tests.integration.harness import python_env

HOSTILE = (
    "disk ok \x1b]0;owned title\x07 \x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J\x1b[1;1H \x9b31m "
    "\u202egnp.exe\x1b\\ \x08\x7f"
)
"""OSC 0 (title), OSC 52 (clipboard), CSI clear + move, 8-bit CSI, a bidi override,
ST, backspace and DEL: everything a terminal acts on."""
CHINESE = "磁盘空间不足"


def raw_controls(text: str) -> list[str]:
    """Characters a terminal would act on (line breaks aside)."""
    return [
        ch
        for ch in text
        if ch != "\n" and (unicodedata.category(ch) == "Cc" or ch in "\u202a\u202b\u202c\u202d\u202e")
    ]


def columns(line: str, *cells: str) -> list[int]:
    """The display column at which each of ``cells`` starts in ``line``."""
    return [display_width(line[: line.index(cell)]) for cell in cells]


# --- the shared implementation -----------------------------------------------------------


def test_every_control_character_becomes_a_visible_escape() -> None:
    shown = cell_text(HOSTILE)
    assert raw_controls(shown) == []
    assert "\\x1b]0;owned title\\x07" in shown and "\\x1b]52;c;cm0gLXJmIH4=\\x07" in shown
    assert "\\x9b31m" in shown and "\\u202egnp.exe" in shown and "\\x08\\x7f" in shown
    assert cell_text("a\nb") == "a\\x0ab"
    assert terminal_text("a\nb\x1b") == "a\nb\\x1b"
    plain = "Load per core 0.3 — ok, 磁盘正常, é"
    assert cell_text(plain) == plain and terminal_text(plain) == plain


def test_display_width_counts_terminal_columns() -> None:
    assert display_width(CHINESE) == 12
    assert display_width("\uff46\uff55\uff4c\uff4c") == 8  # fullwidth forms
    assert display_width("cafe\u0301") == 4  # a combining accent takes no column
    lines = table_lines(("CHECK", "SUMMARY", "SEVERITY"), [("a", CHINESE, "CRIT"), ("bb", "ok", "OK")])
    assert (
        len({columns(line, sev)[0] for line, sev in zip(lines, ("SEVERITY", "CRIT", "OK"), strict=True)}) == 1
    )


def test_log_lines_carry_no_terminal_control() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TerminalFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("tests.terminal")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("inspection %r: invalid id", HOSTILE)
        log.warning("fake\nERROR line")
        try:
            raise ValueError(HOSTILE)
        except ValueError:
            log.exception("check failed: %s", "x")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert raw_controls(text) == []
    assert "WARNING tests.terminal: fake\\x0aERROR line\n" in text  # one record, one line
    assert "Traceback (most recent call last):\n" in text  # the traceback keeps its lines


# --- diag-agent checks: a real plugin's output ----------------------------------------------


def test_diag_agent_checks_table_escapes_plugin_text_and_aligns_chinese(tmp_path: Path) -> None:
    plugin = tmp_path / "check_evil"
    plugin.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write({HOSTILE!r} + '|x=1\\n')\n")
    plugin.chmod(0o755)
    chinese = tmp_path / "check_chinese"
    chinese.write_text(f"#!{sys.executable}\nprint({('OK - ' + CHINESE)!r})\n")
    chinese.chmod(0o755)
    config = tmp_path / "agent.yaml"
    plugins = [{"name": "evil", "command": [str(plugin)]}, {"name": "chinese", "command": [str(chinese)]}]
    config.write_text(yaml.safe_dump({"checks": {"application.nagios": {"params": {"plugins": plugins}}}}))

    def run(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "agent", "checks", "--config", str(config),
             "--check", "application.nagios", "--check", "host.uptime", *extra],
            capture_output=True, text=True, env=python_env(), timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = run()
    assert raw_controls(shown) == [], shown
    assert "\\x1b]0;owned title\\x07" in shown
    lines = shown.splitlines()
    header = lines[0]
    for line in lines[1:]:  # DURATION right-aligned: every line ends at the same column
        assert display_width(line) == display_width(header), (line, header)

    records = json.loads(run("--format", "json"))
    summaries = [r["summary"] for rec in records for r in rec["results"]]
    assert any(HOSTILE in s for s in summaries), summaries  # JSON stays exact
    assert any(CHINESE in s for s in summaries)


def test_the_agent_inventory_table_escapes_product_text(tmp_path: Path) -> None:
    version = tmp_path / "VERSION"
    version.write_text("release \x1b]52;c;cm0gLXJmIH4=\x07")
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {"inventory": {"products": [{"name": "产品", "file": str(version), "regex": "release (.+)"}]}}
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "agent", "inventory", "--config", str(config)],
        capture_output=True, text=True, env=python_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert raw_controls(done.stdout) == []
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("products[产品].version")]
    assert line.endswith("\\x1b]52;c;cm0gLXJmIH4=\\x07")
    values = [ln for ln in done.stdout.splitlines() if ln.startswith(("products[产品].name", "os.kernel"))]
    starts = {display_width(ln[: ln.rindex(ln.split()[-1])]) for ln in values}
    assert len(starts) == 1, values  # the values start in one column


# --- diagctl against a real collector HTTP server ---------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('terminal') / 'c.db'}")
    agent, _ = store.enroll_agent("acme", host="web1", agent_id="acme-web1")
    now = time.time()
    store.hello(agent, HostFactsRow("web1", "0.1.0", {}, "debian", "12", "6.1.0", "x86_64", 2, 1 << 30, now))
    rows = [
        ResultRow(1, now - 30, "host.load", "host", "WARN", "LOAD_HIGH", HOSTILE, 1.0, "[]", None),
        ResultRow(2, now - 20, "storage.filesystem", "storage", "CRIT", "FS_NEARLY_FULL", CHINESE, 3.0, "[]",
                  None),
    ]  # fmt: skip
    store.ingest(agent, IngestBatch(2, 1, rows, [], [], []))
    token = store.create_api_token("eng", "engineer")
    with serving(create_app(store, None)) as url:
        yield url, token
    store.close()


def run_diagctl(server: tuple[str, str], *argv: str) -> str:
    url, token = server
    out = io.StringIO()
    assert diagctl(["--server", url, "--token", token, *argv], out=out) == 0
    return out.getvalue()


@pytest.mark.parametrize("argv", [("results", "--host", "web1"), ("host", "web1")], ids=["results", "host"])
def test_diagctl_human_output_escapes_agent_text(server: tuple[str, str], argv: tuple[str, ...]) -> None:
    shown = run_diagctl(server, *argv)
    assert raw_controls(shown) == [], shown
    assert "\\x1b]0;owned title\\x07" in shown and "\\x1b]52;c;cm0gLXJmIH4=\\x07" in shown
    assert CHINESE in shown


def test_diagctl_json_keeps_agent_text_exact(server: tuple[str, str]) -> None:
    rows = json.loads(run_diagctl(server, "results", "--host", "web1", "--format", "json"))
    assert {r["summary"] for r in rows} == {HOSTILE, CHINESE}


def test_diagctl_tables_align_chinese_by_display_width() -> None:
    out = io.StringIO()
    table([(CHINESE, "CRIT", "web1"), ("/ 97% full", "WARN", "数据库")], ("SUMMARY", "SEVERITY", "HOST"), out)
    lines = out.getvalue().splitlines()
    assert (
        columns(lines[0], "SEVERITY", "HOST")
        == columns(lines[1], "CRIT", "web1")
        == columns(lines[2], "WARN", "数据库")
    )
