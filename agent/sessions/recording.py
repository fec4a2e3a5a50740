"""A session's asciicast v2 recording, written to the state directory and spooled in chunks.

One recording per session (every SSH channel of it, in time order): a header line
``{"version": 2, "width": W, "height": H, "timestamp": T, "env": {...}, "title": ...}``,
then one ``[t, "o", text]`` event per output and, unless ``record_input: false``,
``[t, "i", text]`` per input. Each channel starts with an output line naming it
(``[channel 2: exec 'uptime']``), so a replay shows what was run where.

The file (``<state_dir>/sessions/<session id>.cast``, mode 0600) is the truth; chunks are
its bytes from the last shipped offset (the owner calls :meth:`Recorder.flush` every few
seconds, never the threads that record), appended to the spool as ``session_recording``
entries (so they reach the collector exactly once, like every spooled entry). The final
chunk has ``last`` set and the sha256 of the whole file. The shipped offset and the next
chunk index are kept with the grant, so a restarted agent continues the same recording.

>>> import tempfile, pathlib, json
>>> shipped = []
>>> rec = Recorder(pathlib.Path(tempfile.mkdtemp()), "s1", lambda *c: shipped.append(c))
>>> rec.start_channel("exec 'uptime'", 80, 24)
>>> rec.output(b"up 3 days\\r\\n")
>>> rec.finish()
>>> [json.loads(line)[1:] for line in b"".join(c[1] for c in shipped).decode().splitlines()[1:]]
[['o', "[channel 1: exec 'uptime']\\r\\n"], ['o', 'up 3 days\\r\\n']]
>>> shipped[-1][2], len(shipped[-1][3])
(True, 64)
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["CHUNK_BYTES", "Recorder"]

CHUNK_BYTES: Final = 64 * 1024

Ship = Callable[[int, bytes, bool, str], None]
"""(index, data, last, sha256): append one chunk to the spool."""


class Recorder:
    """Appends asciicast events for one session and ships its chunks. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        session_id: str,
        ship: Ship,
        *,
        record_input: bool = True,
        index: int = 0,
        offset: int = 0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.path = directory / f"{_safe(session_id)}.cast"
        self.session_id = session_id
        self._ship = ship
        self.record_input = record_input
        self.index = index
        self.offset = offset
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self._started: float | None = None
        self._channels = 0
        self.finished = False
        # Opened once, here: SFTP threads record with shell_user's file-system identity,
        # which could not open the agent's files; writes and reads go through this fd.
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        existing = self._read(0)
        if existing:
            header = json.loads(existing.split(b"\n", 1)[0])
            self._started = float(header["timestamp"])
            self._channels = existing.count(b'"[channel ')

    def _read(self, offset: int) -> bytes:
        parts: list[bytes] = []
        while True:
            piece = os.pread(self._fd, 1 << 20, offset)
            if not piece:
                return b"".join(parts)
            parts.append(piece)
            offset += len(piece)

    def _write(self, line: dict[str, object] | list[object]) -> None:
        data = (json.dumps(line, separators=(", ", ": ")) + "\n").encode()
        os.write(self._fd, data)

    def start_channel(self, what: str, width: int, height: int, term: str = "xterm") -> None:
        """A channel opened: the header (first channel only), then a line naming the channel."""
        with self._lock:
            if self.finished:
                return
            if self._started is None:
                self._started = time.time()
                self._write(
                    {
                        "version": 2,
                        "width": max(1, min(width, 1000)),
                        "height": max(1, min(height, 1000)),
                        "timestamp": int(self._started),
                        "env": {"TERM": term, "SHELL": "/bin/sh"},
                        "title": f"remote-diag session {self.session_id}",
                    }
                )
            self._channels += 1
            self._event("o", f"[channel {self._channels}: {what}]\r\n")

    def _event(self, kind: str, text: str) -> None:
        assert self._started is not None
        self._write([round(time.time() - self._started, 6), kind, text])

    def output(self, data: bytes) -> None:
        self._record("o", data)

    def input(self, data: bytes) -> None:
        if self.record_input:
            self._record("i", data)

    def _record(self, kind: str, data: bytes) -> None:
        with self._lock:
            if self.finished or self._started is None:
                return
            self._event(kind, data.decode("utf-8", "replace"))

    def flush(self, last: bool = False) -> None:
        """Ship what was written since the last chunk (``last``: the final chunk, with the sha256)."""
        with self._lock:
            if self.finished:
                return
            data = self._read(self.offset)
            if not data and not last:
                return
            if not data and self.index == 0:
                self._finish_locked()  # nothing was ever recorded: no recording
                return
            pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
            digest = ""
            if last:
                import hashlib  # (the idle agent does without OpenSSL's libcrypto)

                digest = hashlib.sha256(self._read(0)).hexdigest()
            for n, piece in enumerate(pieces):
                final = last and n == len(pieces) - 1
                self._ship(self.index, piece, final, digest if final else "")
                self.index += 1
                self.offset += len(piece)
            if last:
                self._finish_locked()
            if self._on_progress is not None:
                self._on_progress(self.index, self.offset)

    def _finish_locked(self) -> None:
        self.finished = True
        os.close(self._fd)

    def finish(self) -> None:
        """The session ended: ship the rest as the last chunk."""
        self.flush(last=True)


def _safe(session_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in session_id)[:128]
