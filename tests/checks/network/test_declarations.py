"""Every network check declares what it emits: run each on this host and on the
fixture host twice (so rates appear) and compare outputs with its declaration."""

from __future__ import annotations

from typing import Any

import pytest

from checks.api import Check, Metric, Result, SkipCheck
from checks.probe import Probe
from checks.registry import all_checks
from tests.conftest import fixture_probe

NETWORK = {name: check for name, check in all_checks().items() if name.startswith("network.")}


def test_the_network_layer_has_its_checks():
    assert set(NETWORK) >= {
        "network.interfaces",
        "network.tcp_states",
        "network.tcp_retransmits",
        "network.listen_overflows",
        "network.listening_ports",
        "network.tcp_connect",
        "network.dns",
        "network.sockets",
        "network.udp",
    }


def assert_declared(check: Check[Any, Any], outputs: list[Result | Metric]) -> None:
    specs = {spec.name: spec for spec in check.metrics}
    for item in outputs:
        if isinstance(item, Metric):
            assert item.name in specs, f"{check.name} emits undeclared {item.name}"
            assert item.unit is specs[item.name].unit
            assert {k for k, _ in item.labels} == set(specs[item.name].labels), item
        else:
            assert item.key == "OK" or item.key in check.keys, f"{check.name}: undeclared key {item.key}"


@pytest.mark.parametrize("name", sorted(NETWORK))
@pytest.mark.parametrize("host", [None, "net-basic"])
def test_outputs_match_declaration(name, host):
    check = NETWORK[name]
    store: dict[str, Any] = {}
    for now in (1_700_000_000.0, 1_700_000_060.0):
        probe = Probe() if host is None else fixture_probe(host, now=now)
        try:
            outputs = list(check.run(probe, check.params(), store))
        except SkipCheck:
            assert name == "network.tcp_connect"
            return
        assert outputs
        assert_declared(check, outputs)
