"""The SSH server of one session stream (paramiko), imported only once a grant is approved.

Threat model. The engineer's client and everything relayed by the collector are hostile
until the SSH handshake proves the grant's key, and constrained after it:

- authentication: publickey only, and only the grant's key (compared as the key blob);
  no password, keyboard-interactive, none, agent or host-based auth. Any user name maps
  to ``sessions.shell_user``, never root unless ``allow_root: true``;
- the host key is an ed25519 key kept in the state directory (0600), created on first
  use; the collector pins it from SessionStatus ``approved``;
- no port forwarding (local, remote, X11, agent): every such request is refused;
- shell mode: a PTY shell, exec requests and the ``sftp`` subsystem, all as
  ``shell_user`` (when the agent runs as root, processes drop to that account and its
  groups before exec; SFTP file access uses that account's file-system uid and gid on
  its thread). ``scp`` works through SFTP (OpenSSH 9's default) and, as legacy ``scp
  -O``, through an exec of the host's ``scp``;
- diagnostic mode: no shell, no PTY, no SFTP; exec only of the allowlist
  (:mod:`agent.sessions.allowlist`), without a shell; each refusal tells the engineer why;
- environment: only ``LANG`` and ``LC_*`` from the client; ``PATH``, ``HOME``, ``USER``
  are set by the agent;
- cut-off: closing the stream (revocation, expiry, the collector closing it) closes the
  transport and sends SIGHUP then SIGKILL to every process group the stream started.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import pty
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_OK

from agent.sessions import allowlist
from agent.sessions.recording import Recorder

__all__ = ["HostKey", "StreamContext", "serve"]

log = logging.getLogger("agent.sessions")

_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NO_SHELL = ("nologin", "false")


class HostKey:
    """The agent's ed25519 host key in ``<dir>/ssh_host_ed25519_key`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        path = directory / "ssh_host_ed25519_key"
        if not path.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            os.replace(tmp, path)
        self.key = paramiko.Ed25519Key(filename=str(path))
        self.line = f"{self.key.get_name()} {self.key.get_base64()}"
        digest = hashlib.sha256(self.key.asbytes()).digest()
        self.sha256 = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(slots=True)
class StreamContext:
    """What one stream's SSH server needs to know about its session."""

    session_id: str
    stream_id: int
    mode: str
    key_blob: bytes
    shell_user: str
    recorder: Recorder | None
    on_event: Callable[[str, str], None]
    """(event, detail): a host-side event for the audit log (spooled)."""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)


def serve(sock: socket.socket, ctx: StreamContext, host_key: HostKey) -> paramiko.Transport:
    """Start an SSH server on ``sock`` (returns at once; the transport has its own thread)."""
    transport = paramiko.Transport(sock)
    transport.add_server_key(host_key.key)
    transport.set_keepalive(30)
    if ctx.mode == "shell":
        transport.set_subsystem_handler("sftp", _SftpServer, _FsSftp, ctx)
    transport.start_server(event=threading.Event(), server=_Server(ctx))

    def drain() -> None:
        # Channels are driven by the request callbacks; accepting only keeps a reference
        # (paramiko closes a channel object that is garbage-collected).
        channels: list[paramiko.Channel] = []
        while transport.is_active() and not ctx.closed.is_set():
            chan = transport.accept(0.5)
            channels = [c for c in channels if not c.closed]
            if chan is not None:
                channels.append(chan)

    threading.Thread(target=drain, name=f"ssh-accept-{ctx.stream_id}", daemon=True).start()
    return transport


def stop(transport: paramiko.Transport, ctx: StreamContext) -> None:
    """Close the transport and end every process this stream started (SIGHUP, then SIGKILL)."""
    ctx.closed.set()
    with contextlib.suppress(Exception):  # paramiko may raise anything from a half-closed socket
        transport.close()
    procs = list(ctx.processes)
    for proc in procs:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 0.3
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)


# --- the account ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> _Account:
        entry = pwd.getpwnam(name)
        shell = entry.pw_shell or "/bin/sh"
        if os.path.basename(shell) in _NO_SHELL or not os.path.exists(shell):
            shell = "/bin/sh"  # sessions.shell_user was chosen for sessions: give it a shell
        home = entry.pw_dir if os.path.isdir(entry.pw_dir) else "/"
        return cls(name, entry.pw_uid, entry.pw_gid, home, shell, tuple(os.getgrouplist(name, entry.pw_gid)))

    def problem(self) -> str | None:
        """Why this agent cannot run processes as this account (None: it can)."""
        euid = os.geteuid()
        if euid != 0 and euid != self.uid:
            return (
                f"the agent runs as uid {euid} and cannot switch to {self.name}; run it as root or "
                "set sessions.shell_user to the agent's own account"
            )
        return None

    def popen_args(self) -> dict[str, Any]:
        env = {
            "HOME": self.home,
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": self.shell,
            "PATH": _SAFE_PATH,
        }
        args: dict[str, Any] = {"env": env, "cwd": self.home, "close_fds": True}
        if os.geteuid() == 0 and self.uid != 0:
            args.update(user=self.uid, group=self.gid, extra_groups=list(self.groups))
        return args


# --- the SSH server ------------------------------------------------------------------------------


class _Server(paramiko.ServerInterface):
    def __init__(self, ctx: StreamContext) -> None:
        self.ctx = ctx
        self.ptys: dict[int, tuple[str, int, int]] = {}
        self.envs: dict[int, dict[str, str]] = {}
        self.masters: dict[int, int] = {}

    # authentication: the grant's key, nothing else
    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key.asbytes() == self.ctx.key_blob:
            return AUTH_SUCCESSFUL
        self.ctx.on_event("auth_failed", f"key {key.get_name()} is not the grant's key")
        return AUTH_FAILED

    # channels
    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_env_request(self, channel: paramiko.Channel, name: bytes, value: bytes) -> bool:
        key, val = name.decode("utf-8", "replace"), value.decode("utf-8", "replace")
        if (key == "LANG" or key.startswith("LC_")) and len(val) < 64 and val.isprintable():
            self.envs.setdefault(channel.get_id(), {})[key] = val
            return True
        return False

    def check_channel_pty_request(
        self,
        channel: paramiko.Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        if self.ctx.mode != "shell":
            return False
        name = term.decode("ascii", "replace")[:32] if term else "xterm"
        self.ptys[channel.get_id()] = (name if name.isprintable() else "xterm", width, height)
        return True

    def check_channel_window_change_request(
        self, channel: paramiko.Channel, width: int, height: int, pixelwidth: int, pixelheight: int
    ) -> bool:
        master = self.masters.get(channel.get_id())
        if master is not None:
            with contextlib.suppress(OSError):
                _set_size(master, width, height)
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        if self.ctx.mode != "shell":
            self._refuse(
                channel,
                "shell",
                "diagnostic mode has no interactive shell; run one of: " + ", ".join(allowlist.ALLOWED),
            )
            return True
        account = _Account.lookup(self.ctx.shell_user)
        self._start(channel, [account.shell, "-l"], "shell", account)
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        text = command.decode("utf-8", "replace")
        account = _Account.lookup(self.ctx.shell_user)
        if self.ctx.mode == "shell":
            self.ctx.on_event("exec", text[:500])
            self._start(channel, [account.shell, "-c", text], f"exec {text[:200]!r}", account)
            return True
        try:
            resolved = allowlist.resolve(text)
        except allowlist.Refused as exc:
            self._refuse(channel, f"exec {text[:200]!r}", str(exc))
            return True
        self.ctx.on_event("exec", text[:500])
        self._start(channel, list(resolved.argv), f"exec {text[:200]!r}", account, allow_pty=False)
        return True

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if self.ctx.mode != "shell" or name != "sftp":
            self.ctx.on_event("refused", f"subsystem {name[:40]} in {self.ctx.mode} mode")
            return False
        if self.ctx.recorder is not None:
            self.ctx.recorder.start_channel("sftp", 80, 24)
        self.ctx.on_event("sftp", "")
        result: bool = super().check_channel_subsystem_request(channel, name)
        return result

    def check_port_forward_request(self, address: str, port: int) -> int:
        return False  # paramiko: False refuses

    def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, destination: Any) -> int:
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_x11_request(self, *args: Any) -> bool:
        return False

    def check_channel_forward_agent_request(self, channel: paramiko.Channel) -> bool:
        return False

    # processes
    def _refuse(self, channel: paramiko.Channel, what: str, reason: str) -> None:
        self.ctx.on_event("refused", f"{what}: {reason}"[:500])
        if self.ctx.recorder is not None:
            self.ctx.recorder.start_channel(what, 80, 24)
            self.ctx.recorder.output(f"refused: {reason}\r\n".encode())

        def answer() -> None:
            with contextlib.suppress(Exception):  # the client may be gone already
                channel.sendall_stderr(f"diag-agent: refused: {reason}\n".encode())
                channel.send_exit_status(126)
                channel.shutdown_write()
                channel.close()

        # paramiko replies to the request only after this callback returns: answering at
        # once could close the channel before that reply, which clients see as a failure
        # without the reason.
        threading.Timer(0.2, answer).start()

    def _start(
        self,
        channel: paramiko.Channel,
        argv: list[str],
        what: str,
        account: _Account,
        *,
        allow_pty: bool = True,
    ) -> None:
        problem = account.problem()
        if problem is not None:
            self._refuse(channel, what, problem)
            return
        pty_req = self.ptys.get(channel.get_id()) if allow_pty else None
        env = self.envs.get(channel.get_id(), {})
        threading.Thread(
            target=self._run,
            args=(channel, argv, what, account, pty_req, env),
            name=f"ssh-proc-{self.ctx.stream_id}",
            daemon=True,
        ).start()

    def _run(
        self,
        channel: paramiko.Channel,
        argv: list[str],
        what: str,
        account: _Account,
        pty_req: tuple[str, int, int] | None,
        env: dict[str, str],
    ) -> None:
        ctx = self.ctx
        rec = ctx.recorder
        width, height = (pty_req[1], pty_req[2]) if pty_req else (80, 24)
        if rec is not None:
            rec.start_channel(what, width, height, pty_req[0] if pty_req else "xterm")
        args = account.popen_args()
        args["env"].update(env)
        pumps: list[threading.Thread] = []
        try:
            if pty_req is not None:
                args["env"]["TERM"] = pty_req[0]
                master, slave = pty.openpty()
                _set_size(master, width, height)
                setsid = shutil.which("setsid")
                full = [setsid, "-c", *argv] if setsid else argv
                proc = subprocess.Popen(
                    full, stdin=slave, stdout=slave, stderr=slave, start_new_session=setsid is None, **args
                )
                os.close(slave)
                self.masters[channel.get_id()] = master
                ctx.processes.append(proc)
                pumps.append(_pump(lambda: _read_fd(master), channel.sendall, rec.output if rec else None))
                _pump(lambda: channel.recv(32768), lambda d: _write_fd(master, d), rec.input if rec else None)
            else:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    **args,
                )
                ctx.processes.append(proc)
                # BufferedReader.read1: whatever is there, without waiting for a full buffer
                out: Any = proc.stdout
                err: Any = proc.stderr
                stdin: Any = proc.stdin
                output = rec.output if rec else None
                pumps.append(_pump(lambda: out.read1(32768), channel.sendall, output))
                pumps.append(_pump(lambda: err.read1(32768), channel.sendall_stderr, output))
                _pump(
                    lambda: channel.recv(32768), _stdin_writer(stdin), rec.input if rec else None, stdin.close
                )
        except OSError as exc:
            log.warning("session %s: cannot start %s: %s", ctx.session_id, argv[0], exc)
            self._refuse(channel, what, f"cannot start {os.path.basename(argv[0])}: {exc.strerror or exc}")
            return
        code = proc.wait()
        for t in pumps:
            t.join(2.0)
        master_fd = self.masters.pop(channel.get_id(), None)
        if master_fd is not None:
            with contextlib.suppress(OSError):
                os.close(master_fd)
        with contextlib.suppress(ValueError):
            ctx.processes.remove(proc)
        with contextlib.suppress(Exception):  # the channel may be closed by the client or a cut-off
            channel.send_exit_status(code if code >= 0 else 128 - code)
            channel.shutdown_write()
            channel.close()


def _pump(
    read: Callable[[], bytes],
    write: Callable[[bytes], Any],
    record: Callable[[bytes], None] | None,
    close: Callable[[], None] | None = None,
) -> threading.Thread:
    def run() -> None:
        try:
            while True:
                data = read()
                if not data:
                    break
                if record is not None:
                    record(data)
                write(data)
        except (OSError, EOFError, ValueError, paramiko.SSHException):
            pass  # either side went away: the process's exit or the cut-off ends the channel
        finally:
            if close is not None:
                with contextlib.suppress(OSError, ValueError):
                    close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _read_fd(fd: int) -> bytes:
    try:
        return os.read(fd, 32768)
    except OSError:  # EIO: the PTY's other side is closed
        return b""


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _stdin_writer(stdin: Any) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        stdin.write(data)
        stdin.flush()

    return write


def _set_size(fd: int, width: int, height: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(1, height), max(1, width), 0, 0))


# --- SFTP over the real file system, as shell_user ----------------------------------------------

_SETGROUPS = {"x86_64": 116, "aarch64": 159}
"""setgroups(2) by number: per thread, where glibc's wrapper would change every thread."""


def _drop_fs_identity(uid: int, gid: int) -> None:
    """Make this thread's file access that of uid/gid (setfsuid/setfsgid, per thread on Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    number = _SETGROUPS.get(platform.machine())
    if number is None:
        raise OSError("cannot drop supplementary groups per thread on this architecture")
    groups = (ctypes.c_uint * 1)(gid)
    if libc.syscall(number, 1, groups) != 0:
        raise OSError(ctypes.get_errno(), "setgroups failed")
    libc.setfsgid(gid)
    libc.setfsuid(uid)
    if libc.setfsuid(uid) != uid or libc.setfsgid(gid) != gid:
        raise OSError("setfsuid/setfsgid did not take effect")


class _SftpServer(SFTPServer):
    """paramiko's SFTP server, ending with exit status 0 as OpenSSH's sftp-server does
    (``scp`` fails a transfer whose channel closes without one)."""

    def finish_subsystem(self) -> None:
        with contextlib.suppress(Exception):  # the channel may already be closed
            if self.sock is not None:
                self.sock.send_exit_status(0)
        super().finish_subsystem()


class _Handle(SFTPHandle):
    """An open file: reads and writes by paramiko's defaults, plus fstat and fsetstat."""

    filename: str
    readfile: Any
    writefile: Any

    def stat(self) -> Any:
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or 13)

    def chattr(self, attr: SFTPAttributes) -> int:
        try:
            _set_attr(self.filename, attr)
        except OSError as exc:
            return int(SFTPServer.convert_errno(exc.errno or 13))
        return SFTP_OK


def _set_attr(path: str, attr: SFTPAttributes) -> None:
    """chmod, chown, utime and size, as sftp-server does (paramiko's own helper truncates a
    file to zero before extending it to the size asked for)."""
    flags: int = attr._flags  # type: ignore[attr-defined]  # paramiko's own helper reads it too
    if flags & attr.FLAG_PERMISSIONS and attr.st_mode is not None:
        os.chmod(path, attr.st_mode & 0o7777)
    if flags & attr.FLAG_UIDGID and attr.st_uid is not None and attr.st_gid is not None:
        os.chown(path, attr.st_uid, attr.st_gid)
    if flags & attr.FLAG_AMTIME and attr.st_atime is not None and attr.st_mtime is not None:
        os.utime(path, (attr.st_atime, attr.st_mtime))
    if flags & attr.FLAG_SIZE and attr.st_size is not None:
        os.truncate(path, attr.st_size)


class _FsSftp(SFTPServerInterface):
    """The real file system as ``shell_user`` sees it (relative paths start at its home)."""

    def __init__(self, server: Any, ctx: StreamContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.ctx = ctx
        self.account = _Account.lookup(ctx.shell_user)
        self.denied = ""

    def session_started(self) -> None:
        problem = self.account.problem()
        if problem is None and os.geteuid() == 0 and self.account.uid != 0:
            try:
                _drop_fs_identity(self.account.uid, self.account.gid)
            except OSError as exc:
                problem = f"cannot drop to {self.account.name}: {exc}"
        if problem is not None:
            self.denied = problem
            self.ctx.on_event("refused", f"sftp: {problem}")

    def _path(self, path: str) -> str:
        if self.denied:
            raise PermissionError(13, self.denied)
        joined = path if path.startswith("/") else os.path.join(self.account.home, path)
        return os.path.normpath(joined)

    def _note(self, text: str) -> None:
        if self.ctx.recorder is not None:
            self.ctx.recorder.output(f"[sftp] {text}\r\n".encode())

    def list_folder(self, path: str) -> Any:
        try:
            real = self._path(path)
            out = []
            for name in os.listdir(real):
                attr = SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or 13)

    def stat(self, path: str) -> Any:
        try:
            return SFTPAttributes.from_stat(os.stat(self._path(path)))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or 13)

    def lstat(self, path: str) -> Any:
        try:
            return SFTPAttributes.from_stat(os.lstat(self._path(path)))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or 13)

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> Any:
        try:
            real = self._path(path)
            mode = attr.st_mode if attr is not None and attr.st_mode is not None else 0o666
            fd = os.open(real, flags, mode & 0o7777)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or 13)
        if flags & os.O_WRONLY:
            fmode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fmode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fmode = "rb"
        try:
            f = os.fdopen(fd, fmode)
        except OSError as exc:
            os.close(fd)
            return SFTPServer.convert_errno(exc.errno or 13)
        handle = _Handle(flags)
        handle.filename = real
        handle.readfile = f
        handle.writefile = f
        self._note(f"open {real} ({'write' if flags & (os.O_WRONLY | os.O_RDWR) else 'read'})")
        self.ctx.on_event("sftp_open", f"{real} {'write' if flags & (os.O_WRONLY | os.O_RDWR) else 'read'}")
        return handle

    def _do(self, what: str, fn: Callable[[], Any]) -> int:
        try:
            fn()
        except OSError as exc:
            return int(SFTPServer.convert_errno(exc.errno or 13))
        self._note(what)
        return SFTP_OK

    def remove(self, path: str) -> int:
        return self._do(f"remove {path}", lambda: os.remove(self._path(path)))

    def rename(self, oldpath: str, newpath: str) -> int:
        def rename() -> None:
            new = self._path(newpath)
            if os.path.lexists(new):
                raise FileExistsError(17, "target exists")
            os.rename(self._path(oldpath), new)

        return self._do(f"rename {oldpath} {newpath}", rename)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._do(
            f"rename {oldpath} {newpath}", lambda: os.replace(self._path(oldpath), self._path(newpath))
        )

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        mode = attr.st_mode if attr is not None and attr.st_mode is not None else 0o777
        return self._do(f"mkdir {path}", lambda: os.mkdir(self._path(path), mode & 0o7777))

    def rmdir(self, path: str) -> int:
        return self._do(f"rmdir {path}", lambda: os.rmdir(self._path(path)))

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        try:
            _set_attr(self._path(path), attr)
        except OSError as exc:
            return int(SFTPServer.convert_errno(exc.errno or 13))
        return SFTP_OK

    def canonicalize(self, path: str) -> str:
        try:
            return os.path.realpath(self._path(path or "."))
        except OSError:
            return self.account.home

    def readlink(self, path: str) -> Any:
        try:
            return os.readlink(self._path(path))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or 13)

    def symlink(self, target_path: str, path: str) -> int:
        return self._do(f"symlink {path}", lambda: os.symlink(target_path, self._path(path)))
