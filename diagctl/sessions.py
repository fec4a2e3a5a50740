"""``diagctl sessions``: request, list, show, approve, deny, revoke remote sessions; connect
to one (``proxy`` for OpenSSH's ProxyCommand, ``ssh`` with paramiko); ``replay`` its
recording; read and verify the audit log.

Connect with OpenSSH (the command ``show`` prints once the agent approved)::

    ssh -o ProxyCommand='diagctl sessions proxy %h' -o HostKeyAlias=diag-session-ID \\
        -o UserKnownHostsFile=~/.ssh/diag_known_hosts user@ID
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from diagctl.client import Api, Parser, ServerError, UsageError, emit, positive, table, when

__all__ = ["parse_duration", "register"]

STATES = ("requested", "approved", "denied", "revoked", "expired")
_DURATION_RE = re.compile(r"(\d+)([smhd]?)")


def parse_duration(value: str) -> int:
    """Seconds in ``30m``, ``2h``, ``90s`` or ``600``.

    >>> parse_duration("30m"), parse_duration("2h"), parse_duration("90")
    (1800, 7200, 90)
    """
    m = _DURATION_RE.fullmatch(value.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration: use e.g. 30m, 2h or 600 (seconds)")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _path(session_id: str, action: str = "") -> str:
    return f"/api/v1/sessions/{quote(session_id, safe='')}" + (f"/{action}" if action else "")


def _rows(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        print("no sessions", file=out)
        return
    table(
        [
            (
                s["id"],
                s["customer"],
                s["host"],
                s["case_id"],
                s["engineer"],
                s["mode"],
                s["state"],
                s["agent_state"] or "-",
                when(s["not_after"]),
            )
            for s in rows
        ],
        ("SESSION", "CUSTOMER", "HOST", "CASE", "ENGINEER", "MODE", "STATE", "AGENT", "UNTIL"),
        out,
    )


def _render(s: dict[str, Any], out: TextIO) -> None:
    print(
        f"{s['id']}  {s['state'].upper()}  {s['mode']} on {s['host']} ({s['customer']}), case {s['case_id']}",
        file=out,
    )
    print(
        f"  requested by {s['engineer']} {when(s['created_at'])}, "
        f"until {when(s['not_after'])}: {s['reason']}",
        file=out,
    )
    if s["approved_by"]:
        print(f"  approved by {s['approved_by']} ({s['approval']}) {when(s['approved_at'])}", file=out)
    if s["agent_state"]:
        why = f" ({s['agent_reason']})" if s["agent_reason"] else ""
        print(f"  the agent says: {s['agent_state']}{why}", file=out)
    if s["ended_at"]:
        print(f"  ended {when(s['ended_at'])} by {s['ended_by']}: {s['end_reason'] or '-'}", file=out)
    if s["host_key_sha256"]:
        print(f"  host key {s['host_key_sha256']}", file=out)
    if s["ssh_command"] and s["connectable"]:
        print("\nAdd the pinned host key to ~/.ssh/diag_known_hosts:", file=out)
        print(f"  {s['known_hosts_line']}", file=out)
        print("Connect with:", file=out)
        print(f"  {s['ssh_command']}", file=out)
    elif s["state"] in ("requested", "approved") and not s["connectable"]:
        print("\nNot connectable yet: waiting for approval (the customer's admin or the host).", file=out)
    if s.get("streams"):
        print("\nCONNECTIONS", file=out)
        table(
            [
                (
                    x["stream_id"],
                    when(x["opened_at"]),
                    when(x["closed_at"]),
                    x["bytes_in"],
                    x["bytes_out"],
                    x["close_reason"] or "-",
                )
                for x in s["streams"]
            ],
            ("STREAM", "OPENED", "CLOSED", "BYTES IN", "BYTES OUT", "END"),
            out,
        )


def cmd_request(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    key_path = Path(args.key).expanduser()
    try:
        key = key_path.read_text().strip()
    except OSError as exc:
        raise UsageError(
            f"cannot read the public key {key_path}: {exc.strerror} (give one with --key FILE.pub)"
        ) from None
    body = {
        "host": args.host,
        "case": args.case,
        "reason": args.reason,
        "mode": args.mode,
        "public_key": key,
        "duration_s": args.duration,
    }
    data = api.request("POST", "/api/v1/sessions", body=body)

    def render(s: dict[str, Any], out: TextIO) -> None:
        print(f"{s['id']}: requested ({s['mode']} on {s['host']}, until {when(s['not_after'])})", file=out)
        print(f"Waiting for approval; then: diagctl sessions show {s['id']}", file=out)

    emit(args, data, render, out)


def cmd_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {"case": args.case, "host": args.host, "state": args.state, "limit": args.limit}
    emit(args, api.request("GET", "/api/v1/sessions", params), _rows, out)


def cmd_show(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    emit(args, api.request("GET", _path(args.session_id)), _render, out)


def _action(action: str) -> Callable[[Api, argparse.Namespace, TextIO], None]:
    def run(api: Api, args: argparse.Namespace, out: TextIO) -> None:
        body = {"reason": args.reason} if getattr(args, "reason", None) else None
        data = api.request("POST", _path(args.session_id, action), body=body)
        emit(args, data, lambda s, out: print(f"{s['id']}: {s['state']}", file=out), out)

    return run


def cmd_audit(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    if args.verify:
        verdicts = api.request("GET", "/api/v1/sessions/audit/verify")

        def render(rows: list[dict[str, Any]], out: TextIO) -> None:
            table(
                [
                    (v["customer"], v["rows"], "ok" if v["ok"] else f"BROKEN at seq {v['first_bad_seq']}")
                    for v in rows
                ],
                ("CUSTOMER", "ROWS", "CHAIN"),
                out,
            )

        emit(args, verdicts, render, out)
        broken = [v for v in verdicts if not v["ok"]]
        if broken:
            v = broken[0]
            raise ServerError(
                f"the audit log of customer {v['customer']} was changed: row {v['first_bad_seq']} "
                "(or the one before it) no longer matches its hash chain"
            )
        return
    rows = api.request("GET", "/api/v1/sessions/audit", {"session": args.session})

    def render_rows(rows: list[dict[str, Any]], out: TextIO) -> None:
        if not rows:
            print("no audit rows", file=out)
            return
        table(
            [
                (
                    r["customer"],
                    r["seq"],
                    when(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(r["ts"]))),
                    r["session_id"],
                    r["event"],
                    r["actor"],
                    r["detail"],
                )
                for r in rows
            ],
            ("CUSTOMER", "SEQ", "TIME", "SESSION", "EVENT", "BY", "DETAIL"),
            out,
        )

    emit(args, rows, render_rows, out)


# ---------------------------------------------------------------------- connect


def _ws_url(api: Api, session_id: str) -> str:
    base = api.server.rstrip("/")
    scheme = "wss" if base.startswith("https://") else "ws"
    return f"{scheme}://{base.split('://', 1)[1]}{_path(session_id, 'connect')}"


def _open_ws(api: Api, session_id: str) -> Any:
    from websockets.exceptions import InvalidHandshake, InvalidURI
    from websockets.sync.client import connect

    try:
        return connect(
            _ws_url(api, session_id),
            additional_headers={"Authorization": f"Bearer {api.token}"},
            max_size=1 << 20,
            compression=None,
            ping_interval=20,
        )
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        raise ServerError(f"cannot open the session's connection at {api.server}: {exc}") from None


def _closed_reason(exc: Any) -> str:
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None and rcvd.code >= 4000:
        return f"the collector closed the session ({rcvd.code}): {rcvd.reason}"
    return ""


def cmd_proxy(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    """Pump stdin → the session and the session → stdout (OpenSSH's ProxyCommand)."""
    from websockets.exceptions import ConnectionClosed

    ws = _open_ws(api, args.session_id)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()

    def upstream() -> None:
        try:
            while True:
                data = os.read(stdin, 32 * 1024)
                if not data:
                    break
                ws.send(data)
        except (OSError, ConnectionClosed):
            pass
        ws.close()

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while True:
            data = ws.recv()
            if isinstance(data, str):
                continue
            view = memoryview(data)
            while view:
                view = view[os.write(stdout, view) :]
    except ConnectionClosed as exc:
        reason = _closed_reason(exc)
        if reason:
            raise ServerError(reason) from None
    except BrokenPipeError:
        ws.close()


def cmd_ssh(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    """SSH with paramiko over the relay, checking the host key the collector pinned."""
    import socket

    import paramiko  # type: ignore[import-untyped, unused-ignore]

    session = api.request("GET", _path(args.session_id))
    if not session["host_key"]:
        raise UsageError(
            f"session {args.session_id} has no pinned host key yet: is it approved? (diagctl sessions show)"
        )
    ws = _open_ws(api, args.session_id)
    mine, theirs = socket.socketpair()
    _pump(ws, theirs)
    transport = paramiko.Transport(mine)
    try:
        transport.start_client(timeout=20)
        offered = transport.get_remote_server_key()
        if f"{offered.get_name()} {offered.get_base64()}" != " ".join(session["host_key"].split()[:2]):
            raise ServerError("the host key the agent offered does not match the pinned one: not connecting")
        key = paramiko.PKey.from_path(Path(args.identity).expanduser())
        transport.auth_publickey(args.user, key)
        channel = transport.open_session()
        if args.command:
            channel.exec_command(" ".join(args.command))
        else:
            channel.get_pty(term=os.environ.get("TERM", "xterm"))
            channel.invoke_shell()
        _interact(channel, out)
        code = channel.recv_exit_status()
        if code:
            raise ServerError(f"the remote command exited with status {code}")
    except paramiko.SSHException as exc:
        raise ServerError(f"SSH failed: {exc}") from None
    finally:
        transport.close()
        ws.close()


def _pump(ws: Any, sock: Any) -> None:
    def up() -> None:
        try:
            while data := sock.recv(32 * 1024):
                ws.send(data)
        except Exception as exc:  # noqa: BLE001 - either side ended: close both
            del exc
        ws.close()

    def down() -> None:
        try:
            while True:
                data = ws.recv()
                if isinstance(data, bytes):
                    sock.sendall(data)
        except Exception as exc:  # noqa: BLE001 - either side ended: close both
            del exc
        sock.close()

    threading.Thread(target=up, daemon=True).start()
    threading.Thread(target=down, daemon=True).start()


def _interact(channel: Any, out: TextIO) -> None:
    def feed() -> None:
        try:
            while data := os.read(sys.stdin.fileno(), 1024):
                channel.sendall(data)
        except OSError:
            pass
        channel.shutdown_write()

    threading.Thread(target=feed, daemon=True).start()
    while True:
        data = channel.recv(32 * 1024)
        if not data:
            break
        out.write(data.decode(errors="replace"))
        out.flush()


def cmd_replay(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    """Play the session's asciicast with its timing (or save it with --output)."""
    response = api.raw("GET", _path(args.session_id, "recording"))
    if response.headers.get("X-Recording-Verified") != "true":
        print("diagctl: warning: the recording did not match the sha256 the agent sent", file=sys.stderr)
    if args.output:
        Path(args.output).write_bytes(response.content)
        print(
            f"{args.output}: {len(response.content)} bytes (play with: asciinema play {args.output})",
            file=out,
        )
        return
    play(response.content.decode(errors="replace"), out, speed=args.speed, idle_limit=args.idle_limit)


def play(
    cast: str,
    out: TextIO,
    *,
    speed: float = 1.0,
    idle_limit: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write an asciicast v2's output events to ``out`` with their timing.

    >>> import io; buf = io.StringIO(); waits = []
    >>> cast = '{"version": 2}\\n[0.5, "o", "a"]\\n[0.7, "i", "x"]\\n[3.5, "o", "b"]\\n'
    >>> play(cast, buf, speed=2, sleep=waits.append)
    >>> buf.getvalue(), waits
    ('ab', [0.25, 1.0])
    """
    lines = cast.splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except ValueError:
        header = {}
    if not isinstance(header, dict) or header.get("version") != 2:
        raise ServerError("the recording is not an asciicast v2 file")
    last = 0.0
    for line in lines[1:]:
        try:
            t, kind, data = json.loads(line)
        except ValueError:
            continue
        if kind != "o":
            continue
        delay = min(float(t) - last, idle_limit) / speed
        last = float(t)
        if delay > 0:
            sleep(delay)
        out.write(data)
        out.flush()


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """Add this module's commands; ``add(name, func, help, owner)`` as in build_parser."""
    group = sub.add_parser(
        "sessions", help="remote sessions: request, approve, connect, replay, audit", parents=[common]
    )
    s = group.add_subparsers(dest="sessions_command", required=True, parser_class=Parser)
    p = add("request", cmd_request, "request a remote session on a host, for a case", s)
    p.add_argument("--host", required=True)
    p.add_argument("--case", required=True)
    p.add_argument("--duration", type=parse_duration, required=True, help="how long: 30m, 2h (at most 24h)")
    p.add_argument("--reason", required=True, help="why (the customer sees it)")
    p.add_argument("--mode", choices=("diagnostic", "shell"), default="diagnostic")
    p.add_argument("--key", default="~/.ssh/id_ed25519.pub", help="your OpenSSH public key file")
    p = add("list", cmd_list, "list sessions, newest first", s)
    p.add_argument("--case")
    p.add_argument("--host")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--limit", type=positive, default=100)
    p = add("show", cmd_show, "a session, and how to connect once approved", s)
    p.add_argument("session_id", metavar="SESSION")
    for name, helptext in (
        ("approve", "approve a session (customer admins)"),
        ("deny", "deny a requested session (customer admins)"),
        ("revoke", "end a session now"),
    ):
        p = add(name, _action(name), helptext, s)
        p.add_argument("session_id", metavar="SESSION")
        if name != "approve":
            p.add_argument("--reason")
    p = add(
        "proxy",
        cmd_proxy,
        "relay stdin/stdout to a session (ssh -o ProxyCommand='diagctl sessions proxy %%h')",
        s,
    )
    p.add_argument("session_id", metavar="SESSION")
    p = add("ssh", cmd_ssh, "connect with paramiko (no OpenSSH needed)", s)
    p.add_argument("session_id", metavar="SESSION")
    p.add_argument("-l", "--user", default="diag")
    p.add_argument("-i", "--identity", default="~/.ssh/id_ed25519", help="your private key")
    p.add_argument(
        "command",
        nargs="*",
        help="run this instead of a shell (options go before SESSION: ssh -i KEY ID -- CMD)",
    )
    p = add("replay", cmd_replay, "play a session's recording with its timing", s)
    p.add_argument("session_id", metavar="SESSION")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--idle-limit", type=float, default=2.0, help="longest pause, in seconds")
    p.add_argument("-o", "--output", help="save the .cast file instead of playing it")
    p = add("audit", cmd_audit, "the sessions' audit log; --verify checks its hash chains", s)
    p.add_argument("--session")
    p.add_argument("--verify", action="store_true")
