"""The sessions config section, the agent's decision on a grant (every answer), the grant
store across restarts, the diagnostic allowlist, and the frames against the generated code."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from agent.config import ConfigError, load_text
from agent.sessions import allowlist, frames
from agent.sessions.grants import TEST_KEY, Grant, GrantStore, decide, parse_public_key, reason_zh
from agent.sessions.settings import SessionsConfig
from protos.diag.v1 import agent_pb2 as pb

NOW = 1_800_000_000_000
NOON = 12 * 60


def _errors(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_text(text, "agent.yaml")
    return str(err.value)


# --- config -------------------------------------------------------------------------------------


def test_sessions_are_off_by_default_and_read_strictly() -> None:
    assert load_text("", "a.yaml").config.sessions.enabled is False
    cfg = load_text(
        "sessions:\n  enabled: true\n  approvals: [host, customer_admin]\n  modes: [diagnostic, shell]\n"
        "  shell_user: support\n  allowed_hours: '09:00-18:00'\n  record_input: false\n",
        "a.yaml",
    ).config.sessions
    assert (cfg.enabled, cfg.approvals, cfg.modes, cfg.shell_user, cfg.hours, cfg.record_input) == (
        True,
        ("host", "customer_admin"),
        ("diagnostic", "shell"),
        "support",
        (540, 1080),
        False,
    )


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("sessions: {enabld: true}", "sessions.enabld: unknown key; did you mean 'enabled'?"),
        ("sessions: {modes: [root]}", "sessions.modes.0"),
        ("sessions: {approvals: []}", "sessions.approvals"),
        ("sessions: {approvals: [host, host]}", "each value may be listed once"),
        ("sessions: {shell_user: root}", "shell_user root needs allow_root: true"),
        ("sessions: {shell_user: 'a b'}", "expected a local account name"),
        ("sessions: {allowed_hours: '9-18'}", 'expected "HH:MM-HH:MM"'),
        ("sessions: {allowed_hours: '09:00-09:00'}", "start and end must differ"),
        ("sessions: {max_streams: 0}", "sessions.max_streams"),
    ],
)
def test_bad_sessions_config_names_the_field(yaml: str, expected: str) -> None:
    assert expected in _errors(yaml)


def test_root_only_with_explicit_consent() -> None:
    cfg = SessionsConfig.model_validate({"shell_user": "root", "allow_root": True})
    assert cfg.shell_user == "root"


def test_allowed_hours_wrap_midnight() -> None:
    cfg = SessionsConfig(allowed_hours="22:00-06:00")
    assert [cfg.within_hours(m) for m in (21 * 60 + 59, 22 * 60, 0, 5 * 60 + 59, 6 * 60)] == [
        False,
        True,
        True,
        True,
        False,
    ]


# --- decisions ----------------------------------------------------------------------------------


def _grant(**kw: object) -> Grant:
    base: dict[str, object] = {
        "session_id": "s1",
        "agent_id": "a1",
        "mode": "diagnostic",
        "engineer_public_key": TEST_KEY,
        "not_before_unix_ms": NOW - 1000,
        "not_after_unix_ms": NOW + 60_000,
    }
    base.update(kw)
    return Grant(**base)  # type: ignore[arg-type]


ON = SessionsConfig(enabled=True, approvals=("host", "customer_admin"), allowed_hours="09:00-18:00")


@pytest.mark.parametrize(
    ("config", "grant", "state", "reason"),
    [
        (
            SessionsConfig(),
            _grant(approval="customer_admin"),
            "refused",
            "sessions are disabled in /etc/x.yaml",
        ),
        (ON, _grant(agent_id="a2"), "refused", "grant is for another agent"),
        (ON, _grant(not_after_unix_ms=NOW), "refused", "expired"),
        (ON, _grant(not_after_unix_ms=0), "refused", "expired"),
        (ON, _grant(not_before_unix_ms=NOW + 5000), "refused", "not valid yet"),
        (ON, _grant(mode="shell"), "refused", "mode shell is not allowed (allowed: diagnostic)"),
        (ON, _grant(mode=""), "refused", "mode (none) is not allowed"),
        (ON, _grant(engineer_public_key="ssh-ed25519 AAAA"), "refused", "public key: "),
        (ON, _grant(engineer_public_key="ssh-dss AAAAB3NzaC1kc3M="), "refused", "public key: key type"),
        (
            ON,
            _grant(host_decision="denied", host_actor="host:ops"),
            "denied",
            "denied on the host by host:ops",
        ),
        (ON, _grant(revoked="case closed", approval="customer_admin"), "revoked", "case closed"),
        (ON, _grant(), "waiting", "waiting for approval on the host (diag-agent sessions approve s1)"),
        (ON, _grant(approval="customer_admin"), "approved", ""),
        (ON, _grant(host_decision="approved", host_actor="host:ops"), "approved", ""),
        (
            SessionsConfig(enabled=True, approvals=("customer_admin",)),
            _grant(host_decision="approved"),
            "waiting",
            "waiting for approval by the customer's administrator",
        ),
        (
            SessionsConfig(enabled=True),
            _grant(approval="customer_admin"),
            "waiting",
            "waiting for approval on the host",
        ),
        (
            SessionsConfig(enabled=True),
            _grant(approval="host"),
            "waiting",
            "waiting for approval on the host",
        ),
    ],
)
def test_every_decision(config: SessionsConfig, grant: Grant, state: str, reason: str) -> None:
    decision = decide(config, grant, "a1", now_ms=NOW, minute_of_day=NOON, config_path="/etc/x.yaml")
    assert decision.state == state
    assert decision.reason.startswith(reason)


def test_outside_allowed_hours_is_refused() -> None:
    decision = decide(ON, _grant(approval="customer_admin"), "a1", now_ms=NOW, minute_of_day=19 * 60)
    assert (decision.state, decision.reason) == ("refused", "outside allowed hours 09:00-18:00")


def test_reasons_have_chinese_wording() -> None:
    assert reason_zh("outside allowed hours 09:00-18:00").startswith("不在允许的时间段内")
    assert reason_zh("sessions are disabled in /etc/diag-agent/agent.yaml").startswith("会话功能")


def test_public_key_parsing() -> None:
    assert parse_public_key(TEST_KEY)[1].startswith(b"\x00\x00\x00\x0bssh-ed25519")
    for bad in (
        "",
        "ssh-ed25519",
        "ssh-ed25519 !!!",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMq",
        f"{TEST_KEY}\n{TEST_KEY}",
    ):
        with pytest.raises(ValueError):
            parse_public_key(bad)


# --- the grant store ------------------------------------------------------------------------------


def test_grants_survive_a_restart_and_expired_ones_are_dropped(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    store = GrantStore(tmp_path / "sessions")
    store.put(
        _grant(
            session_id="live", not_after_unix_ms=now + 60_000, host_decision="approved", host_actor="host:ops"
        )
    )
    store.put(_grant(session_id="old", not_after_unix_ms=now + 300))
    path = tmp_path / "sessions" / "grants.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "sessions").st_mode) == 0o700
    time.sleep(0.35)
    again = GrantStore(tmp_path / "sessions")
    assert [g.session_id for g in again.all()] == ["live"]
    assert again.get("live") is not None and again.get("live").host_actor == "host:ops"  # type: ignore[union-attr]
    assert [g["session_id"] for g in json.loads(path.read_text())["grants"]] == ["live"]


def test_a_resent_grant_keeps_the_hosts_decision(tmp_path: Path) -> None:
    store = GrantStore(tmp_path)
    first = _grant(host_decision="approved", host_actor="host:ops", recording_index=3)
    store.put(first)
    frame = frames.decode(
        16, pb.SessionGrant(session_id="s1", agent_id="a1", mode="shell").SerializeToString()
    )
    again = Grant.from_frame(frame, store.get("s1"))
    assert (again.mode, again.host_decision, again.host_actor, again.recording_index) == (
        "shell",
        "approved",
        "host:ops",
        3,
    )


def test_an_unreadable_store_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "grants.json").write_text("{not json")
    assert GrantStore(tmp_path).all() == []


# --- the allowlist ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "argv_tail"),
    [
        ("uptime", ()),
        ("df -h", ("-h",)),
        ("free -m", ("-m",)),
        ("ps aux", ("aux",)),
        ("journalctl -n 20 -u ssh.service", ("-n", "20", "-u", "ssh.service", "--no-pager")),
        (
            "diag-agent check host.load",
            ("-m", "agent", "checks", "--check", "host.load", "--sample-interval", "0"),
        ),
    ],
)
def test_allowed_commands(command: str, argv_tail: tuple[str, ...]) -> None:
    resolved = allowlist.resolve(command)
    assert resolved.argv[0].startswith("/") and resolved.argv[1:] == argv_tail


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("rm -rf /", "command 'rm' is not allowed in diagnostic mode; allowed: uptime"),
        ("df -h; id", "df is allowed only as: df -h"),
        ("df -h /etc", "df is allowed only as: df -h"),
        ("uptime | nc x 1", "uptime is allowed only as: uptime"),
        ("journalctl -n 0 -u x", "journalctl -n takes a number of lines from 1 to 9999"),
        ("journalctl -n 10 -u 'a;b'", "journalctl -u takes a systemd unit name"),
        ("journalctl -f", "journalctl is allowed only as: journalctl -n N -u UNIT"),
        ("diag-agent run --config x", "diag-agent is allowed only as: diag-agent check NAME"),
        ("'unterminated", "cannot parse the command"),
        ("", "empty command"),
        ("x" * 1001, "command is longer than 1000 characters"),
    ],
)
def test_refused_commands_say_why(command: str, why: str) -> None:
    with pytest.raises(allowlist.Refused) as err:
        allowlist.resolve(command)
    assert str(err.value).startswith(why)


# --- frames against the generated classes ---------------------------------------------------------


def test_frames_decode_what_the_generated_code_writes() -> None:
    grant = pb.SessionGrant(
        session_id="s1",
        agent_id="a1",
        case_id="c1",
        engineer="e",
        reason="r",
        mode="shell",
        engineer_public_key=TEST_KEY,
        not_before_unix_ms=-5,
        not_after_unix_ms=NOW,
        approval="customer_admin",
        approved_by="boss",
        approved_at_unix_ms=NOW - 1,
    )
    decoded = frames.decode(16, grant.SerializeToString())
    assert isinstance(decoded, frames.SessionGrant)
    assert (decoded.not_before_unix_ms, decoded.approved_by, decoded.engineer_public_key) == (
        -5,
        "boss",
        TEST_KEY,
    )
    assert frames.decode(
        17, pb.SessionOpen(session_id="s", stream_id=9, window_bytes=7).SerializeToString()
    ) == (frames.SessionOpen("s", 9, 7))
    assert frames.decode(
        19, pb.SessionWindow(stream_id=9, add_bytes=5).SerializeToString()
    ) == frames.SessionWindow(9, 5)
    assert frames.decode(
        20, pb.SessionClose(stream_id=9, reason="x").SerializeToString()
    ) == frames.SessionClose(9, "x")
    assert frames.decode(21, pb.SessionRevoke(session_id="s", reason="y").SerializeToString()) == (
        frames.SessionRevoke("s", "y")
    )


@pytest.mark.parametrize(
    ("number", "payload", "why"),
    [
        (18, pb.SessionData(stream_id=1, data=b"x" * (32 * 1024 + 1)).SerializeToString(), "over 32768"),
        (18, pb.SessionData(stream_id=0, data=b"x").SerializeToString(), "stream_id is 0"),
        (16, pb.SessionGrant(session_id="a\x00b").SerializeToString(), "not printable"),
        (16, pb.SessionGrant(session_id="x" * 129).SerializeToString(), "longer than 128"),
        (16, pb.SessionGrant(agent_id="a").SerializeToString(), "session_id is empty"),
        (17, b"\x0a\x05ab", "runs past the message"),
        (17, None, "wrong wire type"),
        (16, b"\x0a\x02\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_frames_raise(number: int, payload: bytes | None, why: str) -> None:
    with pytest.raises(frames.FrameError, match=why):
        frames.decode(number, payload)


def test_agent_frames_parse_with_the_generated_code() -> None:
    msg = pb.AgentMessage.FromString(
        frames.status_message(
            "s1", "approved", host_key="k", host_key_sha256="SHA256:x", ts_unix_ms=5, stream_id=3
        )
    )
    assert (msg.session_status.state, msg.session_status.host_key, msg.session_status.stream_id) == (
        "approved",
        "k",
        3,
    )
    assert pb.AgentMessage.FromString(frames.data_message(3, b"abc")).session_data.data == b"abc"
    assert pb.AgentMessage.FromString(frames.window_message(3, 9)).session_window.add_bytes == 9
    assert pb.AgentMessage.FromString(frames.close_message(3, "bye")).session_close.reason == "bye"
    chunk = pb.SessionRecordingChunk.FromString(frames.recording_entry("s1", 2, b"{}", True, "ab"))
    assert (chunk.index, chunk.data, chunk.last, chunk.sha256) == (2, b"{}", True, "ab")
    event = pb.SessionEvent.FromString(frames.event_entry("s1", "approved", "host:ops", "d"))
    assert (event.event, event.actor) == ("approved", "host:ops")
    with pytest.raises(ValueError):
        frames.data_message(3, b"x" * (32 * 1024 + 1))
