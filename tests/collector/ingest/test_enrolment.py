"""Enrolment hands agents the public address (never a wildcard) in a config file, not a command line.

The HTTP side is the real FastAPI app on a real store; the bootstrap command runs as a
real ``diag-collector`` process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from agent.config import load_text as agent_load_text
from collector.cli.config import ConfigError, load_text
from collector.http.app import create_app
from collector.store import Scope, Store
from collector.store.fleet import FleetRepo

ROOT = Path(__file__).resolve().parents[3]
BEHIND_BALANCER = (
    "grpc: {listen: '0.0.0.0:50051', public_address: 'diag.example.com:443', public_server_name: diag,"
    " tls: {cert_file: /c.pem, key_file: /k.pem}}"
)


@pytest.mark.parametrize("address", ["0.0.0.0:50051", "[::]:50051", ":50051", "collector.example.com:0"])
def test_a_wildcard_public_address_is_refused_naming_the_setting(address: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(f"grpc: {{public_address: '{address}'}}", "c.yaml")
    message = str(caught.value)
    assert message.startswith("c.yaml: grpc.public_address: expected the host:port agents connect to")
    assert "not a wildcard address" in message


@pytest.mark.parametrize(
    ("config", "endpoint"),
    [
        pytest.param("grpc: {listen: '10.0.0.5:50051'}", ("10.0.0.5:50051", False, None), id="listen"),
        pytest.param(
            BEHIND_BALANCER,
            ("diag.example.com:443", True, "diag"),
            id="public behind a balancer, with TLS",
        ),
    ],
)
def test_the_endpoint_handed_to_agents(config: str, endpoint: tuple[str, bool, str | None]) -> None:
    got = load_text(config).grpc.agent_endpoint()
    assert (got.address, got.tls, got.server_name, got.error) == (*endpoint, None)


def test_a_wildcard_listen_without_public_address_refuses_enrolment_but_serves() -> None:
    got = load_text("grpc: {listen: '0.0.0.0:50051'}").grpc.agent_endpoint(bound_port=50051)
    assert got.address is None and got.error is not None
    assert "0.0.0.0:50051 (every interface)" in got.error and "set grpc.public_address" in got.error


def _enrol(store: Store, config: str) -> tuple[int, dict[str, object]]:
    endpoint = load_text(config).grpc.agent_endpoint(bound_port=50051)
    client = TestClient(create_app(store, agent_endpoint=endpoint))
    token = store.create_api_token("eng", "engineer")
    response = client.post(
        "/api/v1/agents",
        json={"customer": "acme", "host": "db1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code, response.json()


def test_the_api_refuses_to_enrol_towards_a_wildcard_and_enrols_nobody(store: Store) -> None:
    status, body = _enrol(store, "grpc: {listen: '0.0.0.0:50051'}")
    assert status == 409 and "set grpc.public_address" in str(body["detail"])
    assert FleetRepo(store).agents(Scope.everything()) == []


def test_the_api_hands_out_the_public_address_and_tls_name(store: Store) -> None:
    status, body = _enrol(store, BEHIND_BALANCER)
    assert status == 201
    loaded = agent_load_text(str(body["config"]), "enrolled.yaml")  # the agent accepts it as is
    assert loaded.config.collector.address == "diag.example.com:443"
    assert loaded.config.collector.tls is not None and loaded.config.collector.tls.server_name == "diag"
    assert str(body["token"]) not in str(body["command"])


def _collector(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bootstrap_commands_keep_stdout_for_data(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'c.db'}"
    created = _collector("token", "create", "--name", "alice", "--store", store, tmp_path=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("\n") == 1 and created.stdout.startswith("dgt_")  # $(...) captures only it
    assert "shown once" in created.stderr
    config = tmp_path / "c.yaml"
    config.write_text("grpc: {listen: '0.0.0.0:50051'}\n")
    refused = _collector(
        "enroll", "--customer", "acme", "--config", str(config), "--store", store, tmp_path=tmp_path
    )
    assert refused.returncode == 2 and "set grpc.public_address" in refused.stderr and refused.stdout == ""
    config.write_text("grpc: {listen: '0.0.0.0:50051', public_address: 'diag.example.com:50051'}\n")
    enrolled = _collector(
        "enroll", "--customer", "acme", "--config", str(config), "--store", store, tmp_path=tmp_path
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert yaml.safe_load(enrolled.stdout)["collector"]["address"] == "diag.example.com:50051"
    out = tmp_path / "agent.yaml"
    written = _collector(
        "enroll",
        "--customer",
        "acme",
        "--config",
        str(config),
        "--store",
        store,
        "-o",
        str(out),
        tmp_path=tmp_path,
    )
    assert written.returncode == 0 and written.stdout == "" and out.stat().st_mode & 0o777 == 0o600
    assert agent_load_text(out.read_text(), str(out)).config.agent.customer == "acme"


def test_serve_on_a_wildcard_says_enrolment_needs_a_public_address(tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.cli",
            "serve",
            "--store",
            f"sqlite:///{tmp_path / 'c.db'}",
            "--grpc-listen",
            "0.0.0.0:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "Ctrl-C stops" in line or not line:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "diag-collector: enrolment refused until fixed: the collector listens on 0.0.0.0:" in err
    assert "set grpc.public_address" in err
