"""``diag-agent sessions list|approve|deny|revoke ID``: this host's say over remote sessions.

Talks to the running daemon through its control socket (:mod:`agent.sessions.control`);
run it as root or as the agent's user. ``--format json`` prints the daemon's answer;
``--lang zh`` prints states and reasons in Simplified Chinese.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_STATES_ZH = {
    "waiting": "等待批准",
    "approved": "已批准",
    "denied": "已拒绝",
    "refused": "已拒收",
    "revoked": "已撤销",
    "ended": "已结束",
    "active": "进行中",
}
_HEADERS = {
    "en": ("SESSION", "STATE", "MODE", "ENGINEER", "CASE", "EXPIRES", "STREAMS", "REASON"),
    "zh": ("会话", "状态", "模式", "工程师", "工单", "到期", "连接", "原因"),
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sessions", help="list, approve, deny or revoke remote sessions on this host")
    p.add_argument("action", choices=("list", "approve", "deny", "revoke"))
    p.add_argument("session_id", nargs="?", metavar="ID", help="the session (approve, deny, revoke)")
    p.add_argument("--config", type=Path, help="agent config file (for agent.state_dir)")
    p.add_argument("--state-dir", type=Path, help="the running agent's state directory")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--lang", choices=("en", "zh"), default="en")


def run(args: argparse.Namespace, state_dir: Path) -> int:
    """Raises ValueError (usage) or RuntimeError (the agent could not be asked)."""
    from agent.sessions.control import ControlError, request

    if args.action != "list" and not args.session_id:
        raise ValueError(
            f"`diag-agent sessions {args.action}` needs a session ID (see: diag-agent sessions list)"
        )
    try:
        answer = request(state_dir / "sessions" / "control.sock", args.action, args.session_id)
    except ControlError as exc:
        raise RuntimeError(str(exc)) from None
    if args.format == "json":
        json.dump(answer, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0 if answer.get("ok") else 1
    if not answer.get("ok"):
        raise RuntimeError(str(answer.get("error", "the agent refused")))
    rows = answer.get("sessions") or [answer.get("session") or {}]
    _table(rows, args.lang)
    return 0


def _table(rows: list[dict[str, Any]], lang: str) -> None:
    from agent.sessions.grants import reason_zh
    from diagconfig.terminal import table_lines

    out = []
    for r in rows:
        state = str(r.get("state", ""))
        reason = str(r.get("reason", ""))
        expires = int(r.get("not_after_unix_ms") or 0) // 1000
        out.append(
            (
                str(r.get("session_id", "")),
                _STATES_ZH.get(state, state) if lang == "zh" else state,
                str(r.get("mode", "")),
                str(r.get("engineer", "")),
                str(r.get("case_id", "")),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(expires)) if expires else "-",
                ",".join(str(s) for s in r.get("streams") or []) or "-",
                reason_zh(reason) if lang == "zh" and reason else reason,
            )
        )
    sys.stdout.writelines(line + "\n" for line in table_lines(_HEADERS[lang], out))
