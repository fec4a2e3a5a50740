"""The command lines' logging: our lines at the chosen level, libraries' quiet unless debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import build_parser as agent_parser
from collector.cli.main import build_parser as collector_parser

ROOT = Path(__file__).resolve().parents[1]


EMIT = """
import logging, sys
from diagconfig.logs import configure
if sys.argv[2] == "configured":
    logging.basicConfig(stream=sys.stdout, format="host program: %(name)s")
configure(sys.argv[1])
logging.getLogger("collector.grpc").info("ours: agent connected")
logging.getLogger("diag_agent.scheduler").debug("ours: debug detail")
logging.getLogger("fontTools.subset").info("Glyph names: ['a', 'b']")
logging.getLogger("weasyprint").warning('Unable to subset "Noto Sans CJK SC" with HarfBuzz')
logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
logging.getLogger("uvicorn.error").info("Started server process")
logging.getLogger("httpx").warning("a library warning that may matter")
logging.getLogger("fontTools.ttLib").error("a library error")
"""


def _emit(level: str, root: str = "fresh") -> subprocess.CompletedProcess[str]:
    """A fresh interpreter (the test runner configures logging in this one) logging as a CLI does."""
    return subprocess.run(
        [sys.executable, "-c", EMIT, level, root],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize("level", ["info", "warning"])
def test_below_debug_only_our_lines_and_library_warnings_pass(level) -> None:
    lines = _emit(level).stderr.splitlines()
    names = [line.split(" ")[3].rstrip(":") for line in lines]
    libraries = ["httpx", "fontTools.ttLib"]
    assert names == (["collector.grpc", *libraries] if level == "info" else libraries), lines


def test_debug_shows_every_library() -> None:
    text = _emit("debug").stderr
    for name in ("fontTools.subset", "weasyprint", "alembic.runtime.migration", "uvicorn.error"):
        assert f" {name}: " in text
    assert "ours: debug detail" in text


def test_a_configured_root_is_left_alone() -> None:
    done = _emit("debug", "configured")
    assert done.stderr == ""  # no second handler of ours
    assert "host program: httpx" in done.stdout


@pytest.mark.parametrize("spelling", ["debug", "DEBUG", "Debug"])
def test_log_level_is_one_spelling_in_any_case_on_both_daemons(spelling) -> None:
    assert collector_parser().parse_args(["--log-level", spelling, "migrate"]).log_level == "debug"
    assert (
        agent_parser().parse_args(["run", "--config", "a.yaml", "--log-level", spelling]).log_level == "debug"
    )


def test_a_bad_log_level_names_the_choices(capsys) -> None:
    with pytest.raises(SystemExit):
        collector_parser().parse_args(["--log-level", "verbose", "migrate"])
    assert "expected one of debug, info, warning, error, got 'verbose'" in capsys.readouterr().err
