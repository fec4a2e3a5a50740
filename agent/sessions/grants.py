"""Grants: what the collector says about a session, what this host decided, and where it is kept.

:func:`decide` is the agent's whole policy, pure (config, grant, local decision, clock):
the collector proposes, the agent disposes. Its answer is a SessionStatus state and, for
``refused``, the reason, in the order the checks run:

1. sessions disabled in the config → refused;
2. the grant names another agent → refused;
3. ``not_after`` passed → refused "expired"; not yet valid → refused;
4. the mode is not in ``sessions.modes`` → refused;
5. the engineer's key is not one OpenSSH public key line → refused;
6. outside ``sessions.allowed_hours`` (host time zone) → refused;
7. denied on this host → denied;
8. approved by an approval the config accepts (``host`` locally, ``customer_admin`` via
   the collector) → approved; otherwise → waiting.

:class:`GrantStore` keeps every grant and this host's decisions in
``<state_dir>/sessions/grants.json`` (directory 0700, file 0600, replaced atomically), so
an approval survives an agent restart; expired grants are dropped when it loads and on
every sweep.

>>> from agent.sessions.settings import SessionsConfig
>>> cfg = SessionsConfig(enabled=True)
>>> g = Grant("s1", "a1", mode="diagnostic", engineer_public_key=TEST_KEY, not_after_unix_ms=2_000)
>>> decide(cfg, g, "a1", now_ms=1_000, minute_of_day=600)
Decision(state='waiting', reason='waiting for approval on the host (diag-agent sessions approve s1)')
>>> decide(cfg, g, "a2", now_ms=1_000, minute_of_day=600).reason
'grant is for another agent'
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import struct
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from agent.sessions.settings import SessionsConfig
from diagconfig.ssh_keys import KEY_TYPES

__all__ = [
    "Decision",
    "Grant",
    "GrantStore",
    "decide",
    "parse_public_key",
]

log = logging.getLogger("agent.sessions")

TEST_KEY: Final = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl engineer@example"
)
"""A syntactically valid public key for doctests (nobody holds its private half)."""

# The wording of every reason, in English (sent) and Simplified Chinese (printed by
# ``diag-agent sessions list --lang zh``).
REASONS_ZH: Final[dict[str, str]] = {
    "sessions are disabled": "会话功能在配置中已关闭",
    "grant is for another agent": "授权属于另一个代理",
    "expired": "已过期",
    "not valid yet": "尚未生效",
    "mode": "不允许该模式",
    "public key": "工程师公钥无效",
    "outside allowed hours": "不在允许的时间段内",
    "denied on the host": "已在主机上拒绝",
    "waiting for approval on the host": "等待主机上的批准",
    "waiting for approval by the customer's administrator": "等待客户管理员批准",
    "revoked": "已撤销",
}


def reason_zh(reason: str) -> str:
    """The Simplified Chinese wording of a reason (its English text when none matches)."""
    for prefix, text in REASONS_ZH.items():
        if reason.startswith(prefix) or prefix in reason:
            return f"{text}: {reason}"
    return reason


@dataclass(frozen=True, slots=True)
class Grant:
    """One session as this agent knows it: the collector's grant plus the host's decision."""

    session_id: str
    agent_id: str
    case_id: str = ""
    engineer: str = ""
    reason: str = ""
    mode: str = ""
    engineer_public_key: str = ""
    not_before_unix_ms: int = 0
    not_after_unix_ms: int = 0
    approval: str = ""
    approved_by: str = ""
    host_decision: str = ""
    """``approved`` or ``denied`` on this host ("" when nobody decided here)."""
    host_actor: str = ""
    revoked: str = ""
    """The reason, once revoked (a revoked grant never comes back)."""
    recording_index: int = 0
    """Next recording chunk index (chunks already spooled keep theirs across restarts)."""
    recording_offset: int = 0
    """Bytes of the recording file already shipped in chunks."""
    received_at_unix_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @classmethod
    def from_frame(cls, frame: Any, previous: Grant | None = None) -> Grant:
        """From a decoded SessionGrant, keeping what this host decided before."""
        base = cls(
            session_id=frame.session_id,
            agent_id=frame.agent_id,
            case_id=frame.case_id,
            engineer=frame.engineer,
            reason=frame.reason,
            mode=frame.mode,
            engineer_public_key=frame.engineer_public_key.strip(),
            not_before_unix_ms=frame.not_before_unix_ms,
            not_after_unix_ms=frame.not_after_unix_ms,
            approval=frame.approval,
            approved_by=frame.approved_by,
        )
        if previous is None:
            return base
        return replace(
            base,
            host_decision=previous.host_decision,
            host_actor=previous.host_actor,
            revoked=previous.revoked,
            recording_index=previous.recording_index,
            recording_offset=previous.recording_offset,
            received_at_unix_ms=previous.received_at_unix_ms,
        )

    def expired(self, now_ms: int) -> bool:
        return bool(self.not_after_unix_ms) and now_ms >= self.not_after_unix_ms


@dataclass(frozen=True, slots=True)
class Decision:
    state: str
    reason: str = ""


def parse_public_key(line: str) -> tuple[str, bytes]:
    """(key type, key blob) of one OpenSSH public key line; ValueError says what is wrong.

    >>> parse_public_key(TEST_KEY)[0]
    'ssh-ed25519'
    """
    parts = line.strip().split()
    if len(parts) < 2 or "\n" in line.strip():
        raise ValueError("expected one OpenSSH public key line: TYPE BASE64 [COMMENT]")
    key_type, b64 = parts[0], parts[1]
    if key_type not in KEY_TYPES:
        raise ValueError(f"key type {key_type[:40]!r} is not supported")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not valid base64") from None
    if len(blob) < 4:
        raise ValueError("the key blob is truncated")
    (size,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + size] != key_type.encode():
        raise ValueError("the key blob does not match its type")
    return key_type, blob


def decide(
    config: SessionsConfig,
    grant: Grant,
    agent_id: str,
    *,
    now_ms: int,
    minute_of_day: int,
    config_path: str = "/etc/diag-agent/agent.yaml",
) -> Decision:
    """This agent's answer to ``grant`` (see the module docstring for the order)."""
    if not config.enabled:
        return Decision("refused", f"sessions are disabled in {config_path}")
    if grant.agent_id != agent_id:
        return Decision("refused", "grant is for another agent")
    if grant.revoked:
        return Decision("revoked", grant.revoked)
    if not grant.not_after_unix_ms or grant.expired(now_ms):
        return Decision("refused", "expired")
    if grant.not_before_unix_ms and now_ms < grant.not_before_unix_ms:
        return Decision("refused", "not valid yet (not_before is in the future)")
    if grant.mode not in config.modes:
        allowed = ", ".join(config.modes)
        return Decision("refused", f"mode {grant.mode or '(none)'} is not allowed (allowed: {allowed})")
    try:
        parse_public_key(grant.engineer_public_key)
    except ValueError as exc:
        return Decision("refused", f"public key: {exc}")
    if not config.within_hours(minute_of_day):
        return Decision("refused", f"outside allowed hours {config.allowed_hours}")
    if grant.host_decision == "denied":
        return Decision("denied", f"denied on the host by {grant.host_actor}")
    if grant.host_decision == "approved" and "host" in config.approvals:
        return Decision("approved")
    if grant.approval == "customer_admin" and "customer_admin" in config.approvals:
        return Decision("approved")
    if "host" in config.approvals:
        return Decision(
            "waiting", f"waiting for approval on the host (diag-agent sessions approve {grant.session_id})"
        )
    return Decision("waiting", "waiting for approval by the customer's administrator")


def minute_now() -> int:
    """Minutes since local midnight (the host's time zone)."""
    t = time.localtime()
    return t.tm_hour * 60 + t.tm_min


class GrantStore:
    """Grants by session id, persisted in ``<dir>/grants.json``. Thread-safe."""

    MAX_GRANTS: Final = 256

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "grants.json"
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o700)
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable session grants %s: %s", self.path, exc)
            return
        now = int(time.time() * 1000)
        names = set(Grant.__dataclass_fields__)
        for item in raw.get("grants", []) if isinstance(raw, dict) else []:
            try:
                grant = Grant(**{k: v for k, v in item.items() if k in names})
            except TypeError:
                continue
            if not grant.expired(now):
                self._grants[grant.session_id] = grant
        self._save_locked()

    def _save_locked(self) -> None:
        doc = {"version": 1, "grants": [asdict(g) for g in self._grants.values()]}
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def get(self, session_id: str) -> Grant | None:
        with self._lock:
            return self._grants.get(session_id)

    def all(self) -> list[Grant]:
        with self._lock:
            return list(self._grants.values())

    def put(self, grant: Grant) -> None:
        """Store or replace ``grant``; the oldest grant goes when there are too many."""
        with self._lock:
            self._grants[grant.session_id] = grant
            while len(self._grants) > self.MAX_GRANTS:
                oldest = min(self._grants.values(), key=lambda g: g.received_at_unix_ms)
                del self._grants[oldest.session_id]
            self._save_locked()

    def sweep(self, now_ms: int) -> list[Grant]:
        """Drop and return the grants that expired."""
        with self._lock:
            gone = [g for g in self._grants.values() if g.expired(now_ms)]
            for g in gone:
                del self._grants[g.session_id]
            if gone:
                self._save_locked()
            return gone
