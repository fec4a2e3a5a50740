"""What enrolment hands to an agent: where to connect, how to verify TLS, and its token.

The collector listens on ``grpc.listen``; agents connect to ``grpc.public_address``, which
differs whenever the collector listens on a wildcard (``0.0.0.0:50051``) or sits behind
NAT or a load balancer. A wildcard is never handed to an agent: it would connect to
itself. The agent's config is printed (or written) as a file, never as a command line,
so the token does not land in shell history or ``ps``.

>>> is_wildcard("0.0.0.0"), is_wildcard("::"), is_wildcard("[::]"), is_wildcard("10.0.0.5")
(True, True, True, False)
>>> print(agent_config_text("db1-a1", "acme", "diag.example.com:50051", "s3cr3t", tls=True,
...                         server_name="diag").split("\\ncollector:")[1])
<BLANKLINE>
  address: "diag.example.com:50051"
  token: "s3cr3t"
  # add ca_file: /etc/diag-agent/collector-ca.pem if a private CA signed the collector
  tls:
    server_name: "diag"
<BLANKLINE>
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.store import AgentIdentity, Store

__all__ = [
    "AgentEndpoint",
    "Enrolled",
    "EnrolmentError",
    "agent_config_text",
    "agent_endpoint",
    "enrol",
    "is_wildcard",
]


class EnrolmentError(Exception):
    """Agents cannot be told where to connect; the message says which setting to add."""


def is_wildcard(host: str) -> bool:
    """An address that means "every interface" to a server and "nowhere useful" to a client."""
    text = host.strip("[]")
    if text in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(text).is_unspecified
    except ValueError:  # a host name
        return False


@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    """Where enrolled agents connect, or why they cannot be told (``error``)."""

    address: str | None
    tls: bool
    server_name: str | None
    error: str | None = None

    def require(self) -> str:
        """The address; EnrolmentError when there is none to hand out."""
        if self.address is None:
            raise EnrolmentError(self.error or "no address for agents")
        return self.address


def agent_endpoint(
    listen: str,
    public_address: str | None,
    *,
    tls: bool,
    server_name: str | None,
    bound_port: int | None = None,
) -> AgentEndpoint:
    """The address enrolment hands out: ``public_address``, else the listen address when it
    is a real one (``bound_port`` replaces a listen port of 0)."""
    if public_address is not None:
        return AgentEndpoint(public_address, tls, server_name)
    host, _, port = listen.rpartition(":")
    if bound_port is not None:
        port = str(bound_port)
    if is_wildcard(host):
        return AgentEndpoint(
            None,
            tls,
            server_name,
            error=(
                f"the collector listens on {host}:{port} (every interface), which agents cannot connect to: "
                "set grpc.public_address in the collector config to the host:port agents reach, "
                "e.g. collector.example.com:50051"
            ),
        )
    return AgentEndpoint(f"{host}:{port}", tls, server_name)


def agent_config_text(
    agent_id: str, customer: str, address: str, token: str, *, tls: bool, server_name: str | None
) -> str:
    """The agent's config file (YAML) for one enrolled agent."""
    lines = [
        "# diag-agent config (/etc/diag-agent/agent.yaml, mode 0640, group diag-agent).",
        "# The token is shown only now: it is stored hashed on the collector.",
        "agent:",
        f"  id: {json.dumps(agent_id)}",
        f"  customer: {json.dumps(customer)}",
        "collector:",
        f"  address: {json.dumps(address)}",
        f"  token: {json.dumps(token)}",
    ]
    if tls:
        # tls: {} is TLS with the system's CAs; a private CA goes in ca_file.
        lines.append("  # add ca_file: /etc/diag-agent/collector-ca.pem if a private CA signed the collector")
        if server_name:
            lines += ["  tls:", f"    server_name: {json.dumps(server_name)}"]
        else:
            lines.append("  tls: {}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Enrolled:
    """An agent just enrolled: who it is, its token (shown once) and its config file."""

    identity: AgentIdentity
    token: str
    config: str


def enrol(
    store: Store, endpoint: AgentEndpoint, customer: str, host: str | None, agent_id: str | None
) -> Enrolled:
    """Enrol an agent in ``store`` and write its config (``diag-collector enroll`` and the API).

    The endpoint is checked first (EnrolmentError), so a collector that cannot tell agents
    where to connect leaves no enrolled agent behind; the store's refusals are StoreError.
    """
    address = endpoint.require()
    identity, token = store.enroll_agent(customer, host, agent_id)
    config = agent_config_text(
        identity.agent_id,
        identity.customer,
        address,
        token,
        tls=endpoint.tls,
        server_name=endpoint.server_name,
    )
    return Enrolled(identity, token, config)
