"""TLS and mTLS on the agent stream, with a CA and certificates made by `openssl` at test time."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from agent.spool import Spool
from agent.streamer import HostIdentity, Streamer, StreamerSettings
from collector.ingest.grpc_server import start_grpc_server
from collector.ingest.grpc_service import GrpcSettings
from collector.store.store import Store
from protos.diag.v1 import agent_pb2_grpc
from tests.collector.ingest.test_grpc_streamer import record
from tests.integration.harness import InProcessCollector, batch_msg, hello_msg, result_seqs, wait_for


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(d: Path, name: str, ca: str, ca_key: str, ext: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN=test {ca}", cwd=d)  # fmt: skip
    _signed(d, "server", "ca.pem", "ca.key", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed(d, "client", "ca.pem", "ca.key", "extendedKeyUsage=clientAuth\n")
    _signed(d, "rogue", "rogue-ca.pem", "rogue-ca.key", "extendedKeyUsage=clientAuth\n")
    return Pki(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "rogue.pem",
        d / "rogue.key",
    )


def _collector(store: Store, pki: Pki, mtls: bool) -> InProcessCollector:
    settings = GrpcSettings(
        listen="127.0.0.1:0",
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca if mtls else None,
    )
    return InProcessCollector(store, settings)


def _secure_stream(
    address: str, token: str, agent_id: str, pki: Pki, cert: Path | None, key: Path | None
) -> grpc.StatusCode:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    with grpc.secure_channel(address, creds) as channel:
        call = agent_pb2_grpc.AgentStreamStub(channel).Connect(
            iter([hello_msg(agent_id), batch_msg([1])]),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
        try:
            list(call)
        except grpc.RpcError as exc:
            return exc.code()
        return call.code()


def test_tls_streamer_with_the_ca_streams(store, pki, tmp_path) -> None:
    _, token = store.enroll_agent("acme", "web1", "agent-1")
    c = _collector(store, pki, mtls=False)
    spool = Spool(tmp_path / "spool.db")
    try:
        spool.append_records([record(i) for i in range(5)])
        settings = StreamerSettings(address=c.address, token=token, ca_file=pki.ca, backoff_base_s=0.05)
        streamer = Streamer(spool, settings, HostIdentity("agent-1"))
        streamer.start()
        try:
            assert wait_for(lambda: streamer.acked_seq == 5, 15)
        finally:
            streamer.stop(1)
        # a plaintext client cannot talk to the TLS port
        with grpc.insecure_channel(c.address) as channel:
            call = agent_pb2_grpc.AgentStreamStub(channel).Connect(iter([hello_msg("agent-1")]), timeout=5)
            with pytest.raises(grpc.RpcError) as err:
                list(call)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        spool.close()
        c.stop()
    assert result_seqs(store, "agent-1") == [1, 2, 3, 4, 5]


def test_mtls_requires_a_client_certificate_from_the_ca(store, pki) -> None:
    _, token = store.enroll_agent("acme", "web1", "agent-1")
    c = _collector(store, pki, mtls=True)
    try:
        assert _secure_stream(c.address, token, "agent-1", pki, None, None) == grpc.StatusCode.UNAVAILABLE
        assert (
            _secure_stream(c.address, token, "agent-1", pki, pki.rogue_cert, pki.rogue_key)
            == grpc.StatusCode.UNAVAILABLE
        )
        assert result_seqs(store, "agent-1") == []
        assert (
            _secure_stream(c.address, token, "agent-1", pki, pki.client_cert, pki.client_key)
            == grpc.StatusCode.OK
        )
    finally:
        c.stop()
    assert result_seqs(store, "agent-1") == [1]


def test_mtls_streamer_needs_its_client_certificate(store, pki, tmp_path) -> None:
    _, token = store.enroll_agent("acme", "web1", "agent-1")
    c = _collector(store, pki, mtls=True)
    spool = Spool(tmp_path / "spool.db")
    try:
        spool.append_records([record(i) for i in range(3)])
        fast: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_cap_s": 0.2}
        anonymous = Streamer(
            spool,
            StreamerSettings(address=c.address, token=token, ca_file=pki.ca, **fast),
            HostIdentity("agent-1"),
        )
        anonymous.start()
        try:
            assert wait_for(lambda: anonymous.last_error is not None, 10)
        finally:
            anonymous.stop(0.5)
        assert anonymous.last_error is not None and anonymous.last_error.startswith("UNAVAILABLE")
        assert result_seqs(store, "agent-1") == [] and spool.stats().depth == 3
        settings = StreamerSettings(
            address=c.address,
            token=token,
            ca_file=pki.ca,
            cert_file=pki.client_cert,
            key_file=pki.client_key,
            server_name="localhost",  # in the server certificate's names, unlike the address
            **fast,
        )
        streamer = Streamer(spool, settings, HostIdentity("agent-1"))
        streamer.start()
        try:
            assert wait_for(lambda: streamer.acked_seq == 3, 15)
        finally:
            streamer.stop(1)
    finally:
        spool.close()
        c.stop()
    assert result_seqs(store, "agent-1") == [1, 2, 3]


async def _start(settings: GrpcSettings) -> None:
    from collector.ingest.grpc_service import AgentStreamService
    from collector.ingest.metrics import CollectorMetrics

    await start_grpc_server(AgentStreamService(None, settings, CollectorMetrics()), settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"tls_cert_file": Path("/nonexistent.pem")}, id="cert without key"),
        pytest.param({"tls_client_ca_file": Path("/nonexistent.pem")}, id="client CA without server cert"),
    ],
)
def test_incomplete_tls_config_is_refused(kwargs) -> None:
    import asyncio

    with pytest.raises(ValueError, match="tls"):
        asyncio.run(_start(GrpcSettings(listen="127.0.0.1:0", **kwargs)))
