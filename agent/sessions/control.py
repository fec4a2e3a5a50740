"""The local control socket of a running agent, and the client ``diag-agent sessions`` uses.

Threat model: the socket (``<state_dir>/sessions/control.sock``) lets whoever reaches it
approve remote access to this host. It is created mode 0600 in a 0700 directory, and
every connection is checked again by the kernel's peer credentials (``SO_PEERCRED``):
only root and the agent's own user are served; anyone else gets an error and nothing
else. A request is one JSON object on one line (at most 4 KiB), the answer one JSON
object; a malformed request gets an error naming what was expected, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

__all__ = ["ControlError", "ControlServer", "request"]

log = logging.getLogger("agent.sessions")

MAX_REQUEST: Final = 4096
_CRED: Final = struct.Struct("3i")

Handler = Callable[[dict[str, Any], str], dict[str, Any]]


class ControlError(Exception):
    """The control socket could not be reached or answered with nonsense."""


def _peer_uid(conn: socket.socket) -> int:
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    _pid, uid, _gid = _CRED.unpack(raw)
    return int(uid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class ControlServer:
    """Serves ``handler(request, actor)`` on a unix socket, one request per connection."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._sock: socket.socket | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        sock.settimeout(0.5)
        self._sock = sock
        threading.Thread(target=self._serve, name="sessions-control", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5.0)
                try:
                    self._one(conn)
                except (OSError, ValueError) as exc:
                    log.debug("control connection failed: %s", exc)

    def _one(self, conn: socket.socket) -> None:
        uid = _peer_uid(conn)
        data = b""
        while b"\n" not in data and len(data) <= MAX_REQUEST:
            chunk = conn.recv(MAX_REQUEST + 1)
            if not chunk:
                break
            data += chunk
        answer: dict[str, Any]
        if uid not in (0, os.geteuid()):  # answered after reading, so the client sees why
            answer = {"ok": False, "error": "only root or the agent's user may control sessions"}
        elif len(data) > MAX_REQUEST:
            answer = {"ok": False, "error": f"request larger than {MAX_REQUEST} bytes"}
        else:
            try:
                req = json.loads(data.split(b"\n", 1)[0] or b"null")
            except ValueError:
                req = None
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                answer = {
                    "ok": False,
                    "error": 'expected one JSON object with "op" (list, approve, deny, revoke)',
                }
            else:
                try:
                    answer = self._handler(req, _user_name(uid))
                except Exception as exc:  # a bug must not end the control socket; the CLI shows one line
                    log.exception("control request failed")
                    answer = {"ok": False, "error": f"the agent failed: {type(exc).__name__}"}
        conn.sendall(json.dumps(answer, ensure_ascii=False).encode() + b"\n")


def request(path: Path, op: str, session_id: str | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
    """Send one request to the agent's control socket; raises :class:`ControlError`."""
    body: dict[str, Any] = {"op": op}
    if session_id is not None:
        body["session_id"] = session_id
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(json.dumps(body).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except FileNotFoundError:
        raise ControlError(
            f"no control socket at {path}: is `diag-agent run` running with sessions.enabled: true "
            "(and this the right --state-dir)?"
        ) from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: run this as root or as the agent's user") from None
    except OSError as exc:
        raise ControlError(f"cannot talk to the agent at {path}: {exc}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError("the agent sent an unreadable answer") from None
    if not isinstance(answer, dict):
        raise ControlError("the agent sent an unreadable answer")
    return answer
