"""Collector config: defaults, overrides, and errors that name file, path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.cli.config import CollectorConfig, ConfigError, load_config, load_config_or_exit, load_text


def test_defaults_are_a_loopback_sqlite_collector() -> None:
    cfg = load_config(None)
    assert cfg == CollectorConfig()
    assert cfg.grpc.listen == "127.0.0.1:50051" and cfg.http.listen == "127.0.0.1:8080"
    assert cfg.grpc.max_message_bytes == 4 * 1024 * 1024 and cfg.grpc.max_batch_entries == 1000
    assert cfg.store_url == "sqlite:////var/lib/diag-collector/collector.db"
    assert cfg.store.retention.policy().raw_points_days == 14


def test_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(
        "grpc:\n  listen: 0.0.0.0:6000\n"
        "  tls: {cert_file: /c.pem, key_file: /k.pem, client_ca_file: /ca.pem}\n"
        "store:\n  sqlite_synchronous: FULL\n  retention: {raw_points_days: 7}\n"
        f"state_dir: {tmp_path}\n"
    )
    cfg = load_config(path, {"grpc.listen": "127.0.0.1:0", "http.listen": None, "store.url": None})
    assert cfg.grpc.listen == "127.0.0.1:0"
    assert cfg.grpc.tls is not None and cfg.grpc.tls.client_ca_file == Path("/ca.pem")
    assert cfg.store.sqlite_synchronous == "FULL"
    assert cfg.store.retention.raw_points_days == 7
    assert cfg.store_url == f"sqlite:///{tmp_path}/collector.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "grpc: {listn: x}", "c.yaml: grpc.listn: unknown key; did you mean 'listen'?", id="typo"
        ),
        pytest.param(
            "http: {listen: 'localhost'}",
            "c.yaml: http.listen: expected host:port with a port 0-65535, "
            "e.g. 127.0.0.1:50051 (got 'localhost')",
            id="bad listen",
        ),
        pytest.param(
            "grpc: {max_batch_entries: 0}",
            "c.yaml: grpc.max_batch_entries: expected: input should be greater than or equal to 1 (got 0)",
            id="too small",
        ),
        pytest.param(
            "store: {retention: {raw_points_days: soon}}",
            "c.yaml: store.retention.raw_points_days: expected: input should be a valid number, "
            "unable to parse string as a number (got 'soon')",
            id="not a number",
        ),
        pytest.param(
            "store: {url: 'mysql://u:pw@h/db'}",
            "c.yaml: store.url: expected sqlite:///path/to/collector.db or "
            "postgresql+psycopg://user@host/db (got <redacted>)",
            id="url is never echoed",
        ),
        pytest.param(
            "grpc: {tls: {cert_file: /c.pem}}", "c.yaml: grpc.tls.key_file: required key is missing", id="tls"
        ),
        pytest.param(
            "- a\n- b", "c.yaml: expected a mapping of sections at the top level (got ['a', 'b'])", id="list"
        ),
        pytest.param(
            "grpc: [",
            "c.yaml: YAML syntax error at line 2, column 1: did not find expected node content",
            id="syntax",
        ),
        pytest.param(
            "grpc: {listen: '127.0.0.1:9'}\nhttp: {listen: '127.0.0.1:9'}",
            "c.yaml: expected: grpc.listen and http.listen must differ",
            id="same port",
        ),
    ],
)
def test_bad_input_names_file_path_and_expectation(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, "c.yaml")
    assert str(info.value).startswith(expected), str(info.value)
    assert info.value.exit_code == 2


def test_unreadable_file_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SystemExit) as info:
        load_config_or_exit(missing)
    assert info.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == f"{missing}: cannot read the config file: No such file or directory"
    )


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_text("grpc: {max_batch_entries: 0, heartbeat_interval_s: -1}\nbogus: 1", "c.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert lines[2].startswith(
        "c.yaml: bogus: unknown key; valid keys here: "
        "desk, emergency, grpc, http, inspections, records, state_dir, store"
    )


def test_a_duplicate_key_is_an_error_naming_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_text("grpc:\n  listen: 127.0.0.1:1\n  listen: 0.0.0.0:2\n", "c.yaml")
    message = str(info.value)
    assert message.startswith("c.yaml:") and "listen" in message and "line 3" in message
