from __future__ import annotations

import configparser

from agent.cli import main
from agent.config import load_config
from tests.agent.conftest import REPO

DEPLOY = REPO / "deploy"


def test_example_config_passes_check_config(capsys):
    assert main(["check-config", str(DEPLOY / "agent.example.yaml")]) == 0
    assert capsys.readouterr().out.startswith("OK: ")


def test_example_config_values():
    loaded = load_config(DEPLOY / "agent.example.yaml")
    assert str(loaded.config.agent.state_dir) == "/var/lib/diag-agent"
    assert loaded.config.collector.token is None  # no token shipped in an example
    assert loaded.enabled_plans


def test_every_section_and_setting_has_a_comment_above():
    lines = (DEPLOY / "agent.example.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if line.strip() and not line.strip().startswith("#") and indent <= 2:
            assert lines[i - 1].strip().startswith("#"), f"line {i + 1} has no comment above: {line!r}"


def test_systemd_unit_is_unprivileged_and_hardened():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "diag-agent.service")
    service = unit["Service"]
    assert service["User"] == "diag-agent"
    assert service["ExecStart"].endswith("diag-agent run --config /etc/diag-agent/agent.yaml")
    assert service["StateDirectory"] == "diag-agent"
    assert service["ReadWritePaths"] == "/var/lib/diag-agent"
    # Least privilege: only the kernel log (host.kernel_events, host.oom_kills).
    assert service["CapabilityBoundingSet"] == "CAP_SYSLOG"
    assert service["AmbientCapabilities"] == "CAP_SYSLOG"
    assert service["DevicePolicy"] == "closed" and service["DeviceAllow"] == "/dev/kmsg r"
    assert service["Restart"] == "on-failure"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes"
    assert service["ProtectSystem"] == "strict"
    sysusers = (DEPLOY / "diag-agent.sysusers.conf").read_text()
    assert any(
        line.split()[:2] == ["u", "diag-agent"] for line in sysusers.splitlines() if line and line[0] != "#"
    )
