"""``allowed_hours`` ends live sessions when the window closes, not only at grant/open time.

The agent's clock has minute granularity (``allowed_hours`` is HH:MM), so a real window
closing "a second from now" would need waiting for a minute boundary; instead the test
drives the real :class:`agent.sessions.manager.SessionManager` with its minute-of-day
clock replaced, frames encoded by the generated protobuf code, and a real paramiko SSH
server on the stream's socket pair (no client: the cut-off is the agent's side). What the
agent sends goes to a list instead of a gRPC stream.
"""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

from agent.sessions.grants import TEST_KEY
from agent.sessions.manager import SessionManager
from agent.sessions.settings import SessionsConfig
from protos.diag.v1 import agent_pb2 as pb
from tests.agent.sessions.events import Events

AGENT = "agent-hours"


def _frame(manager: SessionManager, **kw: object) -> None:
    ((name, message),) = kw.items()
    number = pb.CollectorMessage.DESCRIPTOR.fields_by_name[name].number
    manager.on_frame(number, message.SerializeToString())  # type: ignore[attr-defined]


def test_streams_are_cut_off_when_the_allowed_window_closes(tmp_path: Path) -> None:
    config = SessionsConfig(
        enabled=True,
        approvals=("customer_admin",),
        shell_user=pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() else "nobody",
        allowed_hours="09:00-18:00",
    )
    events = Events()
    manager = SessionManager(config, AGENT, tmp_path, events, "/etc/diag-agent/agent.yaml")
    minute = [17 * 60 + 59]
    manager.minute_of_day = lambda: minute[0]
    sent: list[pb.AgentMessage] = []
    manager.attach(lambda raw: sent.append(pb.AgentMessage.FromString(raw)))
    now = int(time.time() * 1000)
    grant = pb.SessionGrant(
        session_id="s-hours",
        agent_id=AGENT,
        mode="diagnostic",
        engineer_public_key=TEST_KEY,
        not_before_unix_ms=now - 1000,
        not_after_unix_ms=now + 600_000,
        approval="customer_admin",
        approved_by="acme-admin",
    )
    try:
        _frame(manager, session_grant=grant)
        assert [m.session_status.state for m in sent] == ["approved"]
        _frame(manager, session_open=pb.SessionOpen(session_id="s-hours", stream_id=7, window_bytes=65536))
        assert sent[-1].session_status.state == "active" and sent[-1].session_status.stream_id == 7

        manager.sweep()  # 17:59: inside the window, nothing happens
        assert not any(m.WhichOneof("body") == "session_close" for m in sent)

        minute[0] = 18 * 60  # the window closes
        manager.sweep()
        closes = [m.session_close for m in sent if m.WhichOneof("body") == "session_close"]
        assert [(c.stream_id, c.reason) for c in closes] == [(7, "outside allowed hours 09:00-18:00")]
        ended = [m.session_status for m in sent if m.session_status.state == "ended"]
        assert [(s.stream_id, s.reason) for s in ended] == [(7, "outside allowed hours 09:00-18:00")]
        assert ("s-hours", "ended", "agent", "stream 7: outside allowed hours 09:00-18:00") in events.events

        # a second sweep has nothing left to cut; a new connection is refused, saying why
        count = len(sent)
        manager.sweep()
        assert len(sent) == count
        _frame(manager, session_open=pb.SessionOpen(session_id="s-hours", stream_id=8, window_bytes=65536))
        refused = [m.session_status for m in sent[count:] if m.session_status.state == "refused"]
        assert refused and refused[0].stream_id == 8
        assert "outside allowed hours 09:00-18:00" in refused[0].reason

        # the grant itself survives: in the next window the engineer may connect again
        minute[0] = 9 * 60
        count = len(sent)
        _frame(manager, session_open=pb.SessionOpen(session_id="s-hours", stream_id=9, window_bytes=65536))
        statuses = [m.session_status for m in sent[count:] if m.WhichOneof("body") == "session_status"]
        assert [(s.state, s.stream_id) for s in statuses] == [("active", 9)]
    finally:
        manager.close()
