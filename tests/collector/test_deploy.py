from __future__ import annotations

import configparser
from pathlib import Path

from collector.cli.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_loads_and_is_secure_by_default():
    config = load_config(DEPLOY / "collector.example.yaml")
    assert config.grpc.listen.startswith("127.0.0.1:")
    assert config.http.listen.startswith("127.0.0.1:")
    assert str(config.state_dir) == "/var/lib/diag-collector"
    assert config.store.retention.raw_points_days == 14


def test_every_top_level_setting_has_a_comment_above():
    lines = (DEPLOY / "collector.example.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if line.strip() and not line.strip().startswith("#") and indent <= 2 and i > 0:
            previous = lines[i - 1].strip()
            assert previous.startswith("#") or lines[i - 1].endswith(":"), f"line {i + 1}: {line!r}"


def test_systemd_unit_is_unprivileged_and_hardened():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "diag-collector.service")
    service = unit["Service"]
    assert service["DynamicUser"] == "yes"
    assert service["ExecStart"].endswith("diag-collector serve --config /etc/diag-collector/collector.yaml")
    assert service["CapabilityBoundingSet"] == "" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and int(service["LimitNOFILE"]) >= 10000
