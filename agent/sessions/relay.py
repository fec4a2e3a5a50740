"""One SSH connection of a session, carried over the agent's stream.

The SSH server (paramiko) sees an ordinary socket: one end of a :func:`socket.socketpair`.
This module pumps the other end to and from the stream's SessionData frames, with the
contract's per-stream flow control in both directions:

- outbound (host → engineer): at most the collector's window of unacknowledged bytes is
  in flight (``SessionOpen.window_bytes``, then every SessionWindow adds to it); frames
  carry at most 32 KiB. Nothing waits on the stream's own thread: a pump thread reads the
  socket and hands frames to ``send``, which only queues them;
- inbound (engineer → host): the collector may send :data:`INITIAL_WINDOW` bytes before
  we grant more; a writer thread puts them into the socket and grants what it wrote with
  a SessionWindow. Data beyond the window is a protocol violation and ends the stream.

So a busy session holds at most one window of bytes ahead of the agent's batches and
acks on the shared gRPC stream, and an engineer who stops reading stalls only their
own session.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
from collections.abc import Callable
from typing import Final

from agent.sessions import frames

__all__ = ["INITIAL_WINDOW", "Relay"]

log = logging.getLogger("agent.sessions")

INITIAL_WINDOW: Final = 256 * 1024
"""Each side's initial window per stream (the design's 256 KiB)."""
_GRANT_EVERY: Final = 32 * 1024
"""Inbound bytes written before we grant them back (fewer, larger SessionWindow frames)."""


class Relay:
    """Bytes between a SessionData stream and a local socket, under windows in both directions."""

    def __init__(
        self,
        stream_id: int,
        session_id: str,
        send: Callable[[bytes], None],
        on_closed: Callable[[Relay, str], None],
        send_window: int = INITIAL_WINDOW,
    ) -> None:
        self.stream_id = stream_id
        self.session_id = session_id
        self._send = send
        self._on_closed = on_closed
        self.local, self.peer = socket.socketpair()
        """``peer`` goes to the SSH server; we pump ``local``."""
        self._cond = threading.Condition()
        self._send_window = send_window or INITIAL_WINDOW
        self._recv_allowed = INITIAL_WINDOW
        self._inbound: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self.close_reason = ""
        self.bytes_in = 0
        self.bytes_out = 0
        self._out = threading.Thread(target=self._pump_out, name=f"session-out-{stream_id}", daemon=True)
        self._in = threading.Thread(target=self._pump_in, name=f"session-in-{stream_id}", daemon=True)

    def start(self) -> None:
        self._out.start()
        self._in.start()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- from the collector (the streamer's thread: never blocks) ---------------------------------

    def feed(self, data: bytes) -> bool:
        """Queue ``data`` for the SSH server; False (and the stream ends) beyond our window."""
        if self.closed:
            return True
        with self._cond:
            if len(data) > self._recv_allowed:
                violation = True
            else:
                self._recv_allowed -= len(data)
                violation = False
        if violation:
            self.close("the collector sent more than the stream's window", notify=True)
            return False
        self._inbound.put(data)
        return True

    def add_window(self, n: int) -> None:
        with self._cond:
            self._send_window = min(self._send_window + n, 1 << 31)
            self._cond.notify_all()

    # -- pumps ---------------------------------------------------------------------------------

    def _pump_out(self) -> None:
        try:
            while not self.closed:
                with self._cond:
                    while self._send_window <= 0 and not self.closed:
                        self._cond.wait(0.5)
                    allowed = min(self._send_window, frames.MAX_DATA)
                if self.closed:
                    return
                data = self.local.recv(allowed)
                if not data:
                    self.close("the SSH server closed the connection", notify=True)
                    return
                with self._cond:
                    self._send_window -= len(data)
                self.bytes_out += len(data)
                self._send(frames.data_message(self.stream_id, data))
        except OSError:
            self.close("the SSH server's socket failed", notify=True)

    def _pump_in(self) -> None:
        unacked = 0
        try:
            while True:
                data = self._inbound.get()
                if data is None or self.closed:
                    return
                self.local.sendall(data)
                self.bytes_in += len(data)
                unacked += len(data)
                if unacked >= _GRANT_EVERY or self._inbound.empty():
                    with self._cond:
                        self._recv_allowed += unacked
                    self._send(frames.window_message(self.stream_id, unacked))
                    unacked = 0
        except OSError:
            self.close("the SSH server's socket failed", notify=True)

    # -- ending ----------------------------------------------------------------------------------

    def close(self, reason: str, *, notify: bool) -> None:
        """End the stream (idempotent); ``notify`` sends SessionClose to the collector."""
        with self._cond:
            if self._closed.is_set():
                return
            self._closed.set()
            self.close_reason = reason
            self._cond.notify_all()
        self._inbound.put(None)
        for sock in (self.local, self.peer):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        if notify:
            self._send(frames.close_message(self.stream_id, reason))
        try:
            self._on_closed(self, reason)
        except Exception:  # the owner's bookkeeping must not break the pump threads
            log.exception("session stream %d: close handler failed", self.stream_id)
