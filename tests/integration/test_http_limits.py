"""Request bodies against a real ``diag-collector serve`` process (issue 13, High #3).

A large body without a token is answered 401 without being read: the collector's RSS does
not grow by its size and ``/healthz`` keeps answering while it is being sent. A body over a
route's limit is 413 (declared or chunked), with a problem+json body.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from collector.store.store import Store
from tests.integration.harness import Proc, free_port, spawn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MiB = 1024 * 1024


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[int, Proc, dict[str, str]]]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url)
    store.enroll_agent("acme", "web1", "agent-1")
    tokens = {
        "admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
    }
    store.close()
    port = free_port()
    proc = spawn(
        ["-m", "collector.cli", "serve", "--store", url, "--grpc-listen", f"127.0.0.1:{free_port()}",
         "--http-listen", f"127.0.0.1:{port}"],
        tmp_path / "serve.log",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "Ctrl-C stops" not in proc.output():
            assert proc.popen.poll() is None and time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
        yield port, proc, tokens
    finally:
        proc.kill9()


def _send_huge(port: int, headers: str, total: int) -> tuple[int, bytes]:
    """Send a request head and up to ``total`` body bytes; (bytes sent, the response read)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    try:
        sock.sendall(headers.encode())
        chunk = b" " * MiB
        while sent < total:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break  # the collector stopped reading (and answered): what we want
            sent += len(chunk)
        sock.settimeout(10)
        response = b""
        try:
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (ConnectionResetError, TimeoutError):
            pass
        return sent, response
    finally:
        sock.close()


class _Healthz(threading.Thread):
    """Polls /healthz and the collector's RSS while something else runs."""

    def __init__(self, port: int, pid: int) -> None:
        super().__init__(daemon=True)
        self.port, self.process = port, psutil.Process(pid)
        self.stop = threading.Event()
        self.slowest = 0.0
        self.peak_rss = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            started = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=30) as resp:
                assert resp.status == 200
            self.slowest = max(self.slowest, time.monotonic() - started)
            time.sleep(0.05)


def test_a_huge_body_without_a_token_is_refused_unread(collector: tuple[int, Proc, dict[str, str]]) -> None:
    port, proc, _ = collector
    before = psutil.Process(proc.popen.pid).memory_info().rss
    watch = _Healthz(port, proc.popen.pid)
    watch.start()
    declared = 600 * MiB
    head = (
        "PUT /api/v1/customers/acme/profile HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sent, response = _send_huge(port, head, 300 * MiB)
    time.sleep(0.5)
    watch.stop.set()
    watch.join(30)
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 401"), response[:300]
    assert b"application/problem+json" in rest
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["status"] == 401 and body["detail"].startswith("missing API token")
    grown = watch.peak_rss - before
    assert grown < 64 * MiB, (
        f"the collector grew by {grown / MiB:.0f} MiB while {sent / MiB:.0f} MiB were sent"
    )
    assert watch.slowest < 2.0, f"/healthz took {watch.slowest:.2f} s while the body was sent"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_route_limit_is_413(
    collector: tuple[int, Proc, dict[str, str]], chunked: bool
) -> None:
    port, _, tokens = collector
    size = 3 * MiB  # over the profile's 1 MiB
    auth = f"Authorization: Bearer {tokens['admin']}\r\n"
    if chunked:
        head = (
            "PUT /api/v1/customers/acme/profile HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{auth}Transfer-Encoding: chunked\r\n\r\n"
        )
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            sock.sendall(head.encode())
            chunk = b" " * (256 * 1024)
            try:
                for _ in range(size // len(chunk)):
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            response = b""
            try:
                while not response.rstrip().endswith(b"}"):
                    data = sock.recv(65536)
                    if not data:
                        break
                    response += data
            except (ConnectionResetError, TimeoutError):
                pass
        finally:
            sock.close()
    else:
        head = (
            "PUT /api/v1/customers/acme/profile HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {size}\r\n\r\n"
        )
        _, response = _send_huge(port, head, size)
    assert response.startswith(b"HTTP/1.1 413"), response[:300]
    body = json.loads(response.partition(b"\r\n\r\n")[2])
    assert body == {
        "type": "about:blank",
        "title": "Request Entity Too Large",
        "status": 413,
        "detail": "the request body is larger than this endpoint accepts (1,048,576 bytes at most)",
    }
    # The collector still serves a well-sized request with the same token.
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/customers/acme/profile",
        data=json.dumps({"name": "Acme"}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read())["name"] == "Acme"
