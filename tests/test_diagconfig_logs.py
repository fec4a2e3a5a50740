"""The command lines' logging: our lines at the chosen level, libraries' quiet unless debug."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from agent.cli import build_parser as agent_parser
from collector.cli.main import build_parser as collector_parser
from diagconfig.logs import configure


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    progress = logging.getLogger("weasyprint.progress").level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("weasyprint.progress").setLevel(progress)


def _emit_everything() -> None:
    logging.getLogger("collector.grpc").info("ours: agent connected")
    logging.getLogger("diag_agent.scheduler").debug("ours: debug detail")
    logging.getLogger("fontTools.subset").info("Glyph names: ['a', 'b']")
    logging.getLogger("weasyprint").warning('Unable to subset "Noto Sans CJK SC" with HarfBuzz')
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("httpx").warning("a library warning that may matter")
    logging.getLogger("fontTools.ttLib").error("a library error")


@pytest.mark.parametrize("level", ["info", "warning"])
def test_below_debug_only_our_lines_and_library_warnings_pass(level, restore_logging) -> None:
    out = io.StringIO()
    configure(level, out)
    _emit_everything()
    lines = out.getvalue().splitlines()
    names = [line.split(" ")[3].rstrip(":") for line in lines]
    expected = (
        ["collector.grpc", "httpx", "fontTools.ttLib"] if level == "info" else ["httpx", "fontTools.ttLib"]
    )
    assert names == expected, lines


def test_debug_shows_every_library(restore_logging) -> None:
    out = io.StringIO()
    configure("debug", out)
    _emit_everything()
    text = out.getvalue()
    for name in ("fontTools.subset", "weasyprint", "alembic.runtime.migration", "uvicorn.error"):
        assert f" {name}: " in text
    assert "ours: debug detail" in text


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
