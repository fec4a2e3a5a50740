"""The gRPC server around :class:`~collector.ingest.grpc_service.AgentStreamService`:
channel options, TLS (optionally mTLS), the standard health and reflection services,
start and graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1.health import aio as health_aio  # type: ignore[import-untyped, unused-ignore]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped, unused-ignore]

from collector.ingest.grpc_service import SERVICE_NAME, AgentStreamService, GrpcSettings
from protos.diag.v1 import agent_pb2

__all__ = ["server_options", "start_grpc_server", "stop_grpc_server"]


def server_options(settings: GrpcSettings) -> list[tuple[str, Any]]:
    """Channel arguments: message limits, keepalive, many streams, no port sharing."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),  # a second collector on the same port must fail, not share
        ("grpc.max_concurrent_streams", 100_000),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 5),
    ]


def _server_credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None and settings.tls_key_file is None:
        if settings.tls_client_ca_file is not None:
            raise ValueError("grpc.tls.client_ca_file needs cert_file and key_file")
        return None
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ValueError("grpc.tls needs both cert_file and key_file")
    cert = settings.tls_cert_file.read_bytes()
    key = settings.tls_key_file.read_bytes()
    ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


async def start_grpc_server(
    service: AgentStreamService, settings: GrpcSettings
) -> tuple[grpc.aio.Server, int, health_aio.HealthServicer]:
    """Build, bind and start the server; returns it, the bound port and its health servicer.

    ``settings.listen`` may use port 0 (tests): the returned port is the real one.
    """
    server = grpc.aio.server(options=server_options(settings))
    # Requests arrive as bytes (no request deserializer): Connect parses what it needs,
    # and a batch goes to its ingest worker as the agent sent it (see _batch_payload).
    handler = grpc.stream_stream_rpc_method_handler(
        service.Connect,
        request_deserializer=None,
        response_serializer=agent_pb2.CollectorMessage.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Connect": handler}),)
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = (
        SERVICE_NAME,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    creds = _server_credentials(settings)
    try:
        if creds is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, creds)
    except RuntimeError as exc:  # grpc raises RuntimeError when the address cannot be bound
        raise OSError(f"cannot listen for gRPC on {settings.listen}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {settings.listen}")
    await server.start()
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port, health


async def stop_grpc_server(
    server: grpc.aio.Server, service: AgentStreamService, health: health_aio.HealthServicer, grace_s: float
) -> None:
    """Mark NOT_SERVING, stop accepting streams, give open ones ``grace_s`` to finish."""
    await health.enter_graceful_shutdown()
    await service.close_all()
    with contextlib.suppress(asyncio.CancelledError):
        await server.stop(grace_s)
