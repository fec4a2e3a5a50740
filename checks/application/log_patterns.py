"""application.log_patterns: rate of log lines matching configured patterns.

Only new bytes are read. The store remembers, per file, the inode, device, offset
(always just after the last complete line: a partial last line is read again next run)
and a hash of the first 64 bytes. From that:

- first run: start at the end of the file (no backlog flood) unless ``from_start``;
- same inode, size below the offset, or the first bytes changed: the file was
  truncated (or replaced in place), start from 0 and say so in the details;
- new inode: the file was rotated; the rest of the old file is counted when it is at
  ``<path>.1`` with the remembered inode, then the new file is read from 0;
- vanished file: UNKNOWN ``LOG_FILE_MISSING``; the state is kept for its return;
- at most ``max_bytes_per_run`` bytes per file and run; the backlog is reported.

Each pattern's result carries the pattern's own key (``ORA_ERRORS``) when its rate is
over its levels. Those keys come from config, so they cannot be listed in the
check's ``keys``; only the fixed ones are.

``collect`` cannot see the store (the check API hands it to ``evaluate`` only), yet
which bytes to read depends on the stored offset. So ``collect`` stats each file and
returns a section holding a :class:`LogReader`; ``evaluate`` reads the new bytes
through it. A test hands ``evaluate`` an in-memory reader.

Sample of what :func:`collect_log_patterns` returns::

    LogSection(now=1700000000.0, files=(LogFileView(path='/var/log/app/app.log',
        stat=FileStat(inode=1837, device=2049, size=53211,
                      head=b'2024-11-02 10:00:01 INFO starting app 7.4.2\\n...'),
        error=None),), reader=ProbeLogReader(...))
"""

from __future__ import annotations

import codecs
import os
import re
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
    check_levels,
    render_bytes,
)
from checks.probe import Probe

__all__ = [
    "LOG_PATTERNS",
    "FileStat",
    "LogFileSpec",
    "LogFileView",
    "LogPattern",
    "LogPatternsParams",
    "LogReader",
    "LogSection",
    "ProbeLogReader",
    "collect_log_patterns",
    "count_matching_lines",
    "evaluate_log_patterns",
]

HEAD_BYTES = 64
_KEY_RE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
_RESERVED_KEYS = frozenset({"OK", "LOG_FILE_MISSING", "LOG_FILE_UNREADABLE"})


class LogPattern(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    key: str
    """Result key when the rate is over the levels (``ORA_ERRORS``); also the metric label."""
    regex: str
    """Regular expression searched in each line (``^``/``$`` anchor at line ends)."""
    levels_per_minute: Levels = (1.0, 10.0)
    """(warn, crit) matching lines per minute."""

    @field_validator("key")
    @classmethod
    def _upper_key(cls, value: str) -> str:
        if not _KEY_RE.match(value):
            raise ValueError("key must be UPPER_SNAKE_CASE, like ORA_ERRORS")
        if value in _RESERVED_KEYS:
            raise ValueError(f"key {value} is reserved by the check")
        return value

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value, re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class LogFileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    path: str
    """Absolute path of the log file (the live name, not a rotated one)."""
    patterns: tuple[LogPattern, ...] = Field(min_length=1)
    """What to count in this file; each pattern has its own key and levels."""
    encoding: str = "utf-8"
    """Text encoding; undecodable bytes become U+FFFD."""
    from_start: bool = False
    """On the very first run read the whole file instead of starting at its end."""
    max_bytes_per_run: int = Field(default=8 << 20, ge=4096)
    """Bytes read per run at most; the rest waits for later runs (reported as backlog)."""

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must be absolute")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @field_validator("patterns")
    @classmethod
    def _unique_keys(cls, value: tuple[LogPattern, ...]) -> tuple[LogPattern, ...]:
        keys = [p.key for p in value]
        if len(set(keys)) != len(keys):
            raise ValueError("pattern keys must be unique per file")
        return value


class LogPatternsParams(CheckParams):
    files: tuple[LogFileSpec, ...] = ()
    """Log files to follow."""


@dataclass(frozen=True, slots=True)
class FileStat:
    inode: int
    device: int
    size: int
    head: bytes
    """The first (up to) 64 bytes: tells a rewritten file from an appended one."""


class LogReader(Protocol):
    def stat(self, path: str) -> FileStat | None:
        """The file's identity and size; None when it does not exist."""
        ...

    def read(self, path: str, inode: int, offset: int, limit: int) -> bytes | None:
        """Up to ``limit`` bytes from ``offset``; None if ``path`` is no longer ``inode``."""
        ...


@dataclass(frozen=True, slots=True)
class ProbeLogReader:
    """Reads files through the probe's root with ``pread`` (no Python file objects)."""

    probe: Probe

    def stat(self, path: str) -> FileStat | None:
        try:
            fd = os.open(self.probe.path(path), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{path} is not a regular file")
            return FileStat(info.st_ino, info.st_dev, info.st_size, os.pread(fd, HEAD_BYTES, 0))
        finally:
            os.close(fd)

    def read(self, path: str, inode: int, offset: int, limit: int) -> bytes | None:
        try:
            fd = os.open(self.probe.path(path), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            if os.fstat(fd).st_ino != inode:
                return None  # rotated between stat and read: the next run sorts it out
            chunks: list[bytes] = []
            while limit > 0:
                chunk = os.pread(fd, min(limit, 1 << 20), offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                limit -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class LogFileView:
    path: str
    stat: FileStat | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LogSection:
    now: float
    files: tuple[LogFileView, ...]
    reader: LogReader


def collect_log_patterns(probe: Probe, params: LogPatternsParams) -> LogSection:
    if not params.files:
        raise SkipCheck("no log files configured")
    reader = ProbeLogReader(probe)
    views: list[LogFileView] = []
    for spec in params.files:
        try:
            views.append(LogFileView(spec.path, reader.stat(spec.path)))
        except (PermissionError, ValueError) as exc:
            # Unreadable or not a regular file: reported for this file, others still run.
            reason = "permission denied" if isinstance(exc, PermissionError) else str(exc)
            views.append(LogFileView(spec.path, None, reason))
    return LogSection(probe.now(), tuple(views), reader)


def count_matching_lines(pattern: re.Pattern[str], text: str) -> int:
    """Lines of ``text`` in which ``pattern`` matches (each line counted once).

    Searches the whole text at C speed instead of line by line; a match running
    across a newline is re-checked against its first line alone.

    >>> count_matching_lines(re.compile("ERR", re.M), "ERR ERR\\nok\\nERR\\n")
    2
    >>> count_matching_lines(re.compile(r"a\\sb", re.M), "a\\nb\\n")
    0
    """
    count = 0
    pos = 0
    end = len(text)
    while pos < end:
        match = pattern.search(text, pos)
        if match is None:
            break
        line_start = text.rfind("\n", 0, match.start()) + 1
        line_end = text.find("\n", match.start())
        if line_end == -1:
            line_end = end
        if match.end() <= line_end or pattern.search(text, line_start, line_end) is not None:
            count += 1
        pos = line_end + 1
    return count


def _head_hash(head: bytes) -> str:
    # Tells a rotated-in file from the one we read; not security. CRC-32 avoids
    # hashlib, whose OpenSSL backend costs the agent 3 MB of RSS.
    return f"{zlib.crc32(head):08x}"


@dataclass
class _Reading:
    counts: dict[str, int]
    notes: list[str]
    backlog: int = 0


def _count(spec: LogFileSpec, data: bytes, counts: dict[str, int]) -> None:
    text = data.decode(spec.encoding, errors="replace")
    for pattern in spec.patterns:
        counts[pattern.key] += count_matching_lines(re.compile(pattern.regex, re.MULTILINE), text)


def _complete_lines(data: bytes, limit: int) -> int:
    """Bytes of ``data`` that form complete lines (all of it if one line fills ``limit``)."""
    last = data.rfind(b"\n")
    if last >= 0:
        return last + 1
    return len(data) if len(data) >= limit else 0


def evaluate_log_patterns(
    params: LogPatternsParams, section: LogSection, store: ValueStore
) -> Iterator[Result | Metric]:
    views = {v.path: v for v in section.files}
    for spec in params.files:
        view = views.get(spec.path)
        if view is not None:
            yield from _evaluate_file(spec, view, section, store)


def _evaluate_file(
    spec: LogFileSpec, view: LogFileView, section: LogSection, store: ValueStore
) -> Iterator[Result | Metric]:
    item = spec.path
    if view.error is not None:
        yield Result(Severity.UNKNOWN, "LOG_FILE_UNREADABLE", f"Cannot read {spec.path}: {view.error}", item)
        return
    if view.stat is None:
        yield Result(Severity.UNKNOWN, "LOG_FILE_MISSING", f"{spec.path} does not exist", item)
        return
    current = view.stat
    state_key = f"file:{spec.path}"
    state: dict[str, Any] | None = store.get(state_key)
    reading = _Reading({p.key: 0 for p in spec.patterns}, [])
    budget = spec.max_bytes_per_run
    if state is None:
        offset = 0 if spec.from_start else current.size
        if offset:
            reading.notes.append(f"first run: starting at the end ({render_bytes(offset)} not read)")
    elif (state["ino"], state["dev"]) == (current.inode, current.device):
        offset = int(state["off"])
        head_len = int(state["head_len"])
        if current.size < offset:
            reading.notes.append("file was truncated; reading from the start")
            offset = 0
        elif _head_hash(current.head[:head_len]) != state["head"]:
            reading.notes.append("file was rewritten (its first bytes changed); reading from the start")
            offset = 0
    else:
        offset = 0
        budget -= _finish_rotated(spec, state, section.reader, reading, budget)
    data = section.reader.read(spec.path, current.inode, offset, max(budget, 0))
    if data is None:
        # The file changed identity after collect's stat: keep the old state untouched.
        yield Result(Severity.OK, "OK", "File is being rotated; it is read on the next run", item)
        return
    consumed = _complete_lines(data, budget)
    _count(spec, data[:consumed], reading.counts)
    new_offset = offset + consumed
    if len(data) >= budget:  # cut by the budget, not by the end of the file
        reading.backlog = max(current.size - new_offset, 0)
    store[state_key] = {
        "ino": current.inode,
        "dev": current.device,
        "off": new_offset,
        "head": _head_hash(current.head),
        "head_len": len(current.head),
        "ts": section.now,
    }
    yield from _results(spec, state, section.now, reading)


def _finish_rotated(
    spec: LogFileSpec, state: dict[str, Any], reader: LogReader, reading: _Reading, budget: int
) -> int:
    """Count what the rotated-away file still had after our offset; return bytes read."""
    old_path = spec.path + ".1"
    try:
        old = reader.stat(old_path)
    except (PermissionError, ValueError):
        old = None  # an unreadable .1 is the same as none: we cannot finish it
    if old is None or (old.inode, old.device) != (state["ino"], state["dev"]):
        reading.notes.append(f"file was rotated; the rest of the old file was not found at {old_path}")
        return 0
    data = reader.read(old_path, old.inode, int(state["off"]), budget) or b""
    # The old file is finished: its last line counts even without a newline.
    _count(spec, data, reading.counts)
    reading.notes.append(f"file was rotated; read the last {render_bytes(len(data))} of {old_path}")
    return len(data)


def _results(
    spec: LogFileSpec, state: dict[str, Any] | None, now: float, reading: _Reading
) -> Iterator[Result | Metric]:
    item = spec.path
    details = "; ".join(reading.notes) or None
    if reading.backlog:
        backlog = f"{render_bytes(reading.backlog)} not read yet (max_bytes_per_run)"
        details = f"{details}; {backlog}" if details else backlog
    yield Metric("app_log_backlog_bytes", reading.backlog, Unit.BYTES, {"file": item})
    elapsed = now - float(state["ts"]) if state is not None else 0.0
    if state is None or elapsed <= 0:
        yield Result(Severity.OK, "OK", "Watching from now on; rates from the next run", item, details)
        return
    for pattern in spec.patterns:
        count = reading.counts[pattern.key]
        rate = count / elapsed
        result = check_levels(
            rate * 60,
            key=pattern.key,
            label=f"{pattern.key}: {count} matching lines, per minute",
            levels_upper=pattern.levels_per_minute,
            render=lambda v: f"{v:.1f}",
            item=item,
        )
        yield Result(result.severity, result.key, result.summary, item, details)
        labels = {"file": item, "pattern": pattern.key}
        yield Metric("app_log_matches_per_second", rate, Unit.PER_SECOND, labels)


LOG_PATTERNS = Check(
    name="application.log_patterns",
    layer=Layer.APPLICATION,
    summary="Rate of log lines matching patterns (result keys come from config)",
    collect=collect_log_patterns,
    evaluate=evaluate_log_patterns,
    params=LogPatternsParams,
    keys=("LOG_FILE_MISSING", "LOG_FILE_UNREADABLE"),
    metrics=(
        MetricSpec(
            "app_log_matches_per_second",
            Unit.PER_SECOND,
            "Log lines matching a pattern, per second since the last run",
            Direction.UP_IS_BAD,
            ("file", "pattern"),
        ),
        MetricSpec(
            "app_log_backlog_bytes",
            Unit.BYTES,
            "Bytes of the log not read yet because of max_bytes_per_run",
            Direction.UP_IS_BAD,
            ("file",),
        ),
    ),
    interval_s=60,
    timeout_s=30,
)
