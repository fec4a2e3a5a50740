from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.application.log_patterns import (
    FileStat,
    LogFileSpec,
    LogFileView,
    LogPattern,
    LogPatternsParams,
    LogSection,
    collect_log_patterns,
    count_matching_lines,
    evaluate_log_patterns,
)
from checks.probe import Probe
from tests.conftest import fixture_probe

ORA = LogPattern(key="ORA_ERRORS", regex=r"ORA-\d{5}", levels_per_minute=(1, 5))
WARN = LogPattern(key="APP_WARNINGS", regex=r"^\S+ \S+ WARN ", levels_per_minute=(10, 20))


def params_for(path: str, **kw: object) -> LogPatternsParams:
    return LogPatternsParams(
        files=(LogFileSpec.model_validate({"path": path, "patterns": [ORA, WARN], **kw}),)
    )


class Host:
    """A real log file in a temporary root, read through a real probe with a settable clock."""

    def __init__(self, root: Path, **kw: object) -> None:
        self.root = root
        (root / "var" / "log").mkdir(parents=True)
        self.file = root / "var" / "log" / "app.log"
        self.now = 1_000_000.0
        self.store: dict[str, object] = {}
        self.params = params_for("/var/log/app.log", **kw)

    def write(self, text: str, mode: str = "a") -> None:
        with open(self.file, mode) as handle:
            handle.write(text)

    def run(self, advance: float = 60.0) -> list[Result | Metric]:
        self.now += advance
        probe = Probe(root=self.root, clock=lambda: self.now)
        out = list(evaluate_log_patterns(self.params, collect_log_patterns(probe, self.params), self.store))
        json.dumps(self.store)  # the agent persists the store as JSON
        return out


def counts(out: list[Result | Metric]) -> dict[str, float]:
    """Matches per minute by pattern key."""
    return {
        m.label_dict["pattern"]: round(m.value * 60, 3)
        for m in out
        if isinstance(m, Metric) and m.name == "app_log_matches_per_second"
    }


def keys(out: list[Result | Metric]) -> list[tuple[Severity, str]]:
    return [(r.severity, r.key) for r in out if isinstance(r, Result)]


def details(out: list[Result | Metric]) -> str:
    return " ".join(r.details or "" for r in out if isinstance(r, Result))


ORA_LINE = "2024-11-02 10:00:02 ERROR ORA-12541: TNS:no listener\n"
WARN_LINE = "2024-11-02 10:00:03 WARN retrying\n"


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_first_run_starts_at_end_then_counts_new_lines(host):
    host.write(ORA_LINE * 50)
    first = host.run()
    assert keys(first) == [(Severity.OK, "OK")]
    assert "first run: starting at the end" in details(first)
    host.write(ORA_LINE * 3 + WARN_LINE)
    out = host.run()
    assert counts(out) == {"ORA_ERRORS": 3.0, "APP_WARNINGS": 1.0}
    assert keys(out) == [(Severity.WARN, "ORA_ERRORS"), (Severity.OK, "OK")]
    # Nothing new: nothing counted, old lines never re-read.
    assert counts(host.run()) == {"ORA_ERRORS": 0.0, "APP_WARNINGS": 0.0}


def test_from_start_reads_existing_lines(tmp_path):
    host = Host(tmp_path, from_start=True)
    host.write(ORA_LINE * 6)
    host.run()
    host.write(ORA_LINE * 6)
    out = host.run(advance=60)
    assert counts(out)["ORA_ERRORS"] == 6.0  # the first run consumed the backlog, without a rate
    assert keys(out)[0] == (Severity.CRIT, "ORA_ERRORS")


def test_partial_line_waits_for_its_newline(host):
    host.write("")
    host.run()
    host.write("2024 ERROR ORA-0")
    assert counts(host.run())["ORA_ERRORS"] == 0
    host.write("1234 rest of the line\n")
    assert counts(host.run())["ORA_ERRORS"] == 1


def test_truncation_restarts_from_zero(host):
    host.write(WARN_LINE * 20)
    host.run()
    host.write(ORA_LINE, mode="w")
    out = host.run()
    assert counts(out)["ORA_ERRORS"] == 1
    assert "truncated" in details(out)


def test_rewritten_in_place_restarts_from_zero(host):
    host.write(WARN_LINE * 2)
    host.run()
    # Same inode, longer than before, different first bytes: copytruncate plus fast refill.
    host.write(ORA_LINE * 3, mode="r+")
    out = host.run()
    assert counts(out)["ORA_ERRORS"] == 3
    assert "rewritten" in details(out)


def test_rotation_finishes_old_file_at_dot_one(host):
    host.write(WARN_LINE)
    host.run()
    host.write(ORA_LINE * 2 + "ORA-99999 last line without newline")
    os.rename(host.file, str(host.file) + ".1")
    host.write(ORA_LINE)
    out = host.run()
    assert counts(out)["ORA_ERRORS"] == 4
    assert "read the last" in details(out)


def test_rotation_without_old_file(host):
    host.write(WARN_LINE)
    host.run()
    # Moved elsewhere (compressed right away, say): the inode stays in use, so the new
    # file gets a different one.
    os.rename(host.file, host.root / "app.log.old")
    host.write(ORA_LINE * 2)
    out = host.run()
    assert counts(out)["ORA_ERRORS"] == 2
    assert "not found at /var/log/app.log.1" in details(out)


def test_deleted_and_recreated_with_a_reused_inode(host):
    host.write(WARN_LINE * 3)
    host.run()
    os.unlink(host.file)
    host.write(ORA_LINE * 4)  # the file system may hand out the freed inode number again
    out = host.run()
    assert counts(out)["ORA_ERRORS"] == 4
    assert "rewritten" in details(out) or "rotated" in details(out)


def test_vanished_file_is_unknown_and_state_survives(host):
    host.write(WARN_LINE)
    host.run()
    saved = host.file.read_bytes()
    os.unlink(host.file)
    out = host.run()
    assert [(r.severity, r.key, r.summary) for r in out if isinstance(r, Result)] == [
        (Severity.UNKNOWN, "LOG_FILE_MISSING", "/var/log/app.log does not exist")
    ]
    host.write(saved.decode() + ORA_LINE)
    # One new line since the last successful read, two minutes ago.
    assert counts(host.run())["ORA_ERRORS"] == 0.5


def test_max_bytes_per_run_reports_backlog(tmp_path):
    host = Host(tmp_path, max_bytes_per_run=4096)
    host.write("")
    host.run()
    host.write(ORA_LINE * 200)  # 10,600 bytes
    out = host.run()
    read_lines = 4096 // len(ORA_LINE)
    assert counts(out)["ORA_ERRORS"] == read_lines
    backlog = [m.value for m in out if isinstance(m, Metric) and m.name == "app_log_backlog_bytes"]
    assert backlog == [200 * len(ORA_LINE) - read_lines * len(ORA_LINE)]
    assert "not read yet" in details(out)
    total = float(read_lines)
    for _ in range(3):
        total += counts(host.run())["ORA_ERRORS"]
    assert total == 200


def test_one_line_longer_than_the_budget_is_not_stuck(tmp_path):
    host = Host(tmp_path, max_bytes_per_run=4096)
    host.write("")
    host.run()
    host.write("ORA-00001 " + "x" * 10_000 + "\n")
    host.run()
    host.run()
    host.run()
    assert host.store["file:/var/log/app.log"]["off"] == host.file.stat().st_size  # type: ignore[index]


def test_directory_is_unreadable_not_a_crash(tmp_path):
    (tmp_path / "var" / "log" / "dir.log").mkdir(parents=True)
    params = params_for("/var/log/dir.log")
    out = list(evaluate_log_patterns(params, collect_log_patterns(Probe(root=tmp_path), params), {}))
    assert keys(out) == [(Severity.UNKNOWN, "LOG_FILE_UNREADABLE")]


def test_fixture_host_from_start():
    params = params_for("/var/log/app/app.log", from_start=True)
    store: dict[str, object] = {}
    out = list(evaluate_log_patterns(params, collect_log_patterns(fixture_probe("app-logs"), params), store))
    assert keys(out) == [(Severity.OK, "OK")]
    size = (Path(__file__).parents[2] / "fixtures/hosts/app-logs/var/log/app/app.log").stat().st_size
    assert store["file:/var/log/app/app.log"]["off"] == size  # type: ignore[index]


def test_skip_without_files():
    with pytest.raises(SkipCheck):
        collect_log_patterns(Probe(), LogPatternsParams())


# --- evaluate with an in-memory reader -------------------------------------------------------


@dataclass
class MemoryReader:
    files: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def stat(self, path: str) -> FileStat | None:
        if path not in self.files:
            return None
        inode, data = self.files[path]
        return FileStat(inode, 1, len(data), data[:64])

    def read(self, path: str, inode: int, offset: int, limit: int) -> bytes | None:
        if path not in self.files or self.files[path][0] != inode:
            return None
        return self.files[path][1][offset : offset + limit]


PATH = "/l"
P = LogPatternsParams(files=(LogFileSpec(path=PATH, patterns=(ORA,)),))
LBL = {"file": PATH, "pattern": "ORA_ERRORS"}


def memory_section(data: bytes, now: float = 160.0, inode: int = 7) -> LogSection:
    reader = MemoryReader({PATH: (inode, data)})
    return LogSection(now, (LogFileView(PATH, reader.stat(PATH)),), reader)


def state(off: int, head: bytes, ts: float = 100.0, ino: int = 7) -> dict[str, object]:
    import zlib

    digest = f"{zlib.crc32(head[:64]):08x}"
    return {"ino": ino, "dev": 1, "off": off, "head": digest, "head_len": len(head[:64]), "ts": ts}


OLD = b"line one\n"


@pytest.mark.parametrize(
    ("stored", "data", "expected"),
    [
        pytest.param(
            state(len(OLD), OLD),
            OLD + b"ORA-00001\n" * 3,
            [
                Metric("app_log_backlog_bytes", 0, Unit.BYTES, {"file": PATH}),
                Result(
                    Severity.WARN,
                    "ORA_ERRORS",
                    "ORA_ERRORS: 3 matching lines, per minute: 3.0 (warn/crit at 1.0/5.0)",
                    PATH,
                ),
                Metric("app_log_matches_per_second", 3 / 60, Unit.PER_SECOND, LBL),
            ],
            id="three new matches in a minute warn",
        ),
        pytest.param(
            state(len(OLD), OLD),
            OLD + b"fine\n",
            [
                Metric("app_log_backlog_bytes", 0, Unit.BYTES, {"file": PATH}),
                Result(Severity.OK, "OK", "ORA_ERRORS: 0 matching lines, per minute: 0.0", PATH),
                Metric("app_log_matches_per_second", 0, Unit.PER_SECOND, LBL),
            ],
            id="no matches",
        ),
        pytest.param(
            state(100, b"x" * 100),
            b"ORA-00001\n" * 6,
            [
                Metric("app_log_backlog_bytes", 0, Unit.BYTES, {"file": PATH}),
                Result(
                    Severity.CRIT,
                    "ORA_ERRORS",
                    "ORA_ERRORS: 6 matching lines, per minute: 6.0 (warn/crit at 1.0/5.0)",
                    PATH,
                    "file was truncated; reading from the start",
                ),
                Metric("app_log_matches_per_second", 6 / 60, Unit.PER_SECOND, LBL),
            ],
            id="truncated",
        ),
        pytest.param(
            None,
            OLD,
            [
                Metric("app_log_backlog_bytes", 0, Unit.BYTES, {"file": PATH}),
                Result(
                    Severity.OK,
                    "OK",
                    "Watching from now on; rates from the next run",
                    PATH,
                    "first run: starting at the end (9 B not read)",
                ),
            ],
            id="first run",
        ),
    ],
)
def test_evaluate(stored, data, expected):
    store = {} if stored is None else {f"file:{PATH}": stored}
    assert list(evaluate_log_patterns(P, memory_section(data), store)) == expected
    assert store[f"file:{PATH}"]["off"] == len(data)


def test_evaluate_file_replaced_between_collect_and_read():
    section = memory_section(OLD + b"ORA-1\n")
    object.__setattr__(section, "reader", MemoryReader({PATH: (8, OLD)}))
    store = {f"file:{PATH}": state(len(OLD), OLD)}
    out = list(evaluate_log_patterns(P, section, store))
    assert keys(out) == [(Severity.OK, "OK")]
    assert store[f"file:{PATH}"] == state(len(OLD), OLD)


@pytest.mark.parametrize(
    ("regex", "text", "expected"),
    [
        pytest.param("ERR", "ERR ERR\nok\nERR", 2, id="counted once per line, last line without newline"),
        pytest.param("^ok$", "ok\nnot ok\nok\n", 2, id="anchors are per line"),
        pytest.param(r"a\sb", "a\nb\na b\n", 1, id="a match across lines does not count"),
        pytest.param("x*", "a\nb\n", 2, id="empty matches count every line"),
        pytest.param("z", "", 0, id="empty text"),
    ],
)
def test_count_matching_lines(regex, text, expected):
    assert count_matching_lines(re.compile(regex, re.MULTILINE), text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(
            {"path": "/l", "patterns": [{"key": "ORA", "regex": "(unclosed"}]}, id="malformed regex"
        ),
        pytest.param({"path": "/l", "patterns": [{"key": "ora_errors", "regex": "x"}]}, id="lower-case key"),
        pytest.param(
            {"path": "/l", "patterns": [{"key": "LOG_FILE_MISSING", "regex": "x"}]}, id="reserved key"
        ),
        pytest.param({"path": "/l", "patterns": [{"key": "A", "regex": "x"}] * 2}, id="duplicate keys"),
        pytest.param({"path": "/l", "patterns": []}, id="no patterns"),
        pytest.param({"path": "rel.log", "patterns": [{"key": "A", "regex": "x"}]}, id="relative path"),
        pytest.param(
            {"path": "/l", "encoding": "klingon", "patterns": [{"key": "A", "regex": "x"}]}, id="encoding"
        ),
    ],
)
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValidationError):
        LogFileSpec.model_validate(bad)
