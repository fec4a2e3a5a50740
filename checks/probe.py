"""The probe: a check's only door to the system.

``collect_*`` functions read files and run commands through a :class:`Probe`, never
directly, so a test hands them a probe rooted in a fixture tree
(``tests/fixtures/hosts/<name>/proc/...``) and a fake clock.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "proc").mkdir(); _ = (root / "proc" / "loadavg").write_text("0.5 0.4 0.3 1/99 7\\n")
>>> Probe(root=root).read_text("/proc/loadavg").split()[0]
'0.5'
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["CommandResult", "CommandTimeout", "Probe", "read_file_bytes"]

_ABSENT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})
"""The errors ``Path.exists`` reads as "does not exist"."""

MAX_COMMAND_OUTPUT = 1 << 20
"""Bytes of a command's stdout/stderr kept; a plugin printing more is cut, not buffered."""


class CommandTimeout(Exception):
    """A command outlived its timeout and was killed with its whole process group."""

    def __init__(self, argv: Sequence[str], timeout_s: float) -> None:
        super().__init__(f"{argv[0]} did not finish within {timeout_s:g} s and was killed")
        self.argv = list(argv)
        self.timeout_s = timeout_s


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


@dataclass
class Probe:
    """Access to one host: files under ``root``, commands, clocks, a per-cycle cache.

    ``cache`` holds what several checks of one cycle share (the process table, the
    mount list); the agent calls :meth:`new_cycle` before each cycle.
    """

    root: Path = Path("/")
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    env: Mapping[str, str] | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    agent_status: dict[str, Any] = field(default_factory=dict)
    """What the agent shares about itself (spool depth, drops, last cycle's cost), set
    by the agent before each cycle; read only by ``application.agent``."""
    _prefix: str = field(init=False, repr=False, default="")
    _lasting: dict[str, tuple[bytes | None, Any]] = field(init=False, repr=False, default_factory=dict)
    """Values kept across cycles by :meth:`parsed_while_unchanged`: key → (file bytes, value)."""

    def __post_init__(self) -> None:
        # A plain string prefix: building Path objects costs microseconds on every
        # one of the hundreds of small reads in a cycle.
        root = str(self.root)
        self._prefix = "" if root == "/" else root.rstrip("/")

    @property
    def is_host_root(self) -> bool:
        """True when the probe looks at this very host (netlink, syscalls are valid)."""
        return not self._prefix

    # -- files ------------------------------------------------------------------

    def path(self, absolute: str) -> Path:
        """Map an absolute host path (``/proc/stat``) into this probe's root."""
        return Path(self.fspath(absolute))

    def fspath(self, absolute: str) -> str:
        """Like :meth:`path`, as a string (cheaper for hot reads)."""
        if not absolute.startswith("/"):
            raise ValueError(f"probe paths are absolute, got {absolute!r}")
        return self._prefix + absolute

    def read_text(self, absolute: str) -> str:
        """Read a whole (small) file; undecodable bytes become U+FFFD, never an error."""
        return self.read_bytes(absolute).decode("utf-8", errors="replace")

    def read_bytes(self, absolute: str, limit: int = MAX_COMMAND_OUTPUT) -> bytes:
        """Read up to ``limit`` bytes. Raw ``os.read`` costs about half of ``open()``,
        which matters for the hundreds of small ``/proc`` reads in every cycle."""
        return read_file_bytes(self.fspath(absolute), limit)

    def exists(self, absolute: str) -> bool:
        """As ``Path.exists`` (False when absent, an error such as EACCES raises), without
        building a Path."""
        try:
            os.stat(self.fspath(absolute))
        except OSError as exc:
            if exc.errno in _ABSENT_ERRNOS:
                return False
            raise
        except ValueError:
            return False  # an embedded NUL: no such file, as Path.exists says
        return True

    def listdir(self, absolute: str) -> list[str]:
        return os.listdir(self.fspath(absolute))

    # -- time -------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    # -- shared per-cycle data ----------------------------------------------------

    def new_cycle(self) -> None:
        self.cache.clear()

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute once per cycle; later checks of the same cycle reuse the value."""
        try:
            return self.cache[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self.cache[key] = compute()
            return value

    def parsed_while_unchanged(self, key: str, absolute: str, parse: Callable[[str], T]) -> T:
        """``parse(read_text(absolute))``, kept across cycles while the file is unchanged.

        Here the file is read every time and parsed again only when its bytes differ
        from the last read; :class:`agent.runner.AgentProbe` skips even the read for
        files whose changes the kernel signals (the mount table). ``parse`` must be a
        pure function of the text (same text, equal value); it may raise, and then
        nothing is kept.
        """
        data = self.read_bytes(absolute)
        held = self._lasting.get(key)
        if held is not None and held[0] == data:
            return held[1]  # type: ignore[no-any-return]
        value = parse(data.decode("utf-8", errors="replace"))
        self._lasting[key] = (data, value)
        return value

    # -- commands -----------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run a command without a shell, in its own process group.

        On timeout the whole group gets SIGKILL (a plugin's children too) and
        :class:`CommandTimeout` is raised. Output beyond 1 MiB per stream is cut.
        """
        started = self.monotonic()
        merged_env = dict(os.environ if self.env is None else self.env)
        if env:
            merged_env.update(env)
        merged_env.setdefault("LC_ALL", "C")
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=merged_env,
        )
        try:
            out, err = proc.communicate(input_text.encode() if input_text is not None else None, timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise CommandTimeout(argv, timeout_s) from None
        except BaseException:
            _kill_group(proc)
            raise
        return CommandResult(
            argv=tuple(argv),
            returncode=proc.returncode,
            stdout=out[:MAX_COMMAND_OUTPUT].decode("utf-8", errors="replace"),
            stderr=err[:MAX_COMMAND_OUTPUT].decode("utf-8", errors="replace"),
            duration_s=self.monotonic() - started,
        )


def read_file_bytes(path: str, limit: int = MAX_COMMAND_OUTPUT) -> bytes:
    """Read up to ``limit`` bytes of ``path`` with bare system calls.

    A read shorter than asked for is taken as the end of the file, as it is for regular
    files and for the kernel's ``/proc`` and ``/sys`` files (which fill the buffer
    until their end): one ``read`` per small file instead of two.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            want = min(remaining, 65536)
            chunk = os.read(fd, want)
            chunks.append(chunk)
            remaining -= len(chunk)
            if len(chunk) < want:
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing to kill
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        # A descendant left the group (setsid) and still holds our pipes: stop reading.
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()
