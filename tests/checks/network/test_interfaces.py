from __future__ import annotations

import shutil
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network.interfaces import (
    InterfacesParams,
    InterfacesSection,
    InterfaceState,
    collect_interfaces,
    evaluate_interfaces,
)
from checks.probe import Probe
from tests.conftest import FIXTURES, fixture_probe


def state(name="eth0", admin_up=True, carrier=True, operstate="up", speed=1000, **counters):
    values = dict.fromkeys(
        (
            "rx_bytes",
            "rx_packets",
            "rx_errors",
            "rx_drops",
            "tx_bytes",
            "tx_packets",
            "tx_errors",
            "tx_drops",
        ),
        0,
    )
    values.update(counters)
    return InterfaceState(name, admin_up, operstate, carrier, speed, **values)


def results(out):
    return [(r.item, r.severity, r.key) for r in out if isinstance(r, Result)]


def test_collect_reads_link_state_with_few_files():
    section = collect_interfaces(fixture_probe("net-basic"), InterfacesParams())
    by_name = {i.name: i for i in section.interfaces}
    assert list(by_name) == ["eth0", "eth1", "docker0", "veth1a2b"]  # lo excluded by default
    assert by_name["eth0"] == state("eth0", speed=1000, rx_bytes=119203263, rx_packets=2961, rx_errors=3,
                                    rx_drops=7, tx_bytes=170755, tx_packets=1787, tx_errors=1)  # fmt: skip
    assert (by_name["eth1"].admin_up, by_name["eth1"].carrier, by_name["eth1"].operstate) == (
        True,
        False,
        "down",
    )
    # docker0 has no carrier file (the kernel refuses it while down): flags say admin down
    assert (by_name["docker0"].admin_up, by_name["docker0"].carrier) == (False, None)
    assert by_name["veth1a2b"].speed_mbps is None  # no speed file: virtual link
    assert section.missing == ()


def test_collect_include_exclude_and_expected_interfaces():
    params = InterfacesParams(include=("eth*",), exclude=("eth1",), expected_up=("lo", "bond0"))
    section = collect_interfaces(fixture_probe("net-basic"), params)
    assert [i.name for i in section.interfaces] == ["lo", "eth0"]  # expected ones bypass the filters
    assert section.missing == ("bond0",)


def test_collect_reads_real_sysfs():
    section = collect_interfaces(Probe(), InterfacesParams(exclude=()))
    lo = next(i for i in section.interfaces if i.name == "lo")
    assert lo.admin_up and lo.carrier is True and lo.rx_packets >= 0


def test_collect_skips_an_interface_that_vanished(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "net-basic", root)
    shutil.rmtree(root / "sys/class/net/eth1")
    section = collect_interfaces(Probe(root=root), InterfacesParams())
    assert "eth1" not in {i.name for i in section.interfaces}


@pytest.mark.parametrize(
    ("relative", "content", "match"),
    [
        pytest.param("sys/class/net/eth0/carrier", "banana\n", "/sys/class/net/eth0/carrier", id="carrier"),
        pytest.param("sys/class/net/eth0/speed", "fast\n", "/sys/class/net/eth0/speed", id="speed"),
        pytest.param("sys/class/net/docker0/flags", "0xZZ\n", "/sys/class/net/docker0/flags", id="flags"),
        pytest.param(
            "sys/class/net/eth1/operstate", "\n", "/sys/class/net/eth1/operstate", id="empty operstate"
        ),
    ],
)
def test_collect_rejects_garbled_sysfs(tmp_path, relative, content, match):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "net-basic", root)
    (root / relative).write_text(content)
    with pytest.raises(ValueError, match=match):
        collect_interfaces(Probe(root=root), InterfacesParams())


def test_collect_rejects_garbled_fixture_tree():
    with pytest.raises(ValueError, match="/proc/net/dev"):
        collect_interfaces(fixture_probe("net-garbled"), InterfacesParams())


@pytest.mark.parametrize(
    ("iface", "params", "store", "expected"),
    [
        pytest.param(state(), InterfacesParams(), {}, (Severity.OK, "OK"), id="up"),
        pytest.param(state(carrier=False, operstate="down"), InterfacesParams(), {}, (Severity.OK, "OK"),
                     id="no carrier, never up, not expected"),
        pytest.param(state(carrier=False, operstate="down"), InterfacesParams(), {"up:eth0": True},
                     (Severity.WARN, "IFACE_DOWN"), id="no carrier after being up warns"),
        pytest.param(state(carrier=False, operstate="down"), InterfacesParams(expected_up=("eth0",)), {},
                     (Severity.CRIT, "IFACE_DOWN"), id="expected up without carrier is critical"),
        pytest.param(state(admin_up=False, carrier=None, operstate="down"), InterfacesParams(),
                     {"up:eth0": True}, (Severity.OK, "OK"), id="admin down is deliberate"),
        pytest.param(state(admin_up=False, carrier=None), InterfacesParams(expected_up=("eth0",)), {},
                     (Severity.CRIT, "IFACE_DOWN"), id="expected up but admin down"),
    ],
)  # fmt: skip
def test_evaluate_link_state(iface, params, store, expected):
    section = InterfacesSection(100.0, (iface,), ())
    assert results(evaluate_interfaces(params, section, store)) == [("eth0", *expected)]


def test_link_loss_warns_until_the_link_returns():
    params = InterfacesParams()
    store: dict[str, Any] = {}
    up, down = state(), state(carrier=False, operstate="down")
    runs = [up, down, down, up, down]
    severities = [
        results(evaluate_interfaces(params, InterfacesSection(float(i), (iface,), ()), store))[0][1]
        for i, iface in enumerate(runs)
    ]
    assert severities == [Severity.OK, Severity.WARN, Severity.WARN, Severity.OK, Severity.WARN]


def test_missing_expected_interface_is_critical():
    out = list(
        evaluate_interfaces(
            InterfacesParams(expected_up=("bond0",)), InterfacesSection(1.0, (), ("bond0",)), {}
        )
    )
    assert results(out) == [("bond0", Severity.CRIT, "IFACE_MISSING")]


@pytest.mark.parametrize(
    ("errors", "drops", "expected"),
    [
        pytest.param(0, 0, [(Severity.OK, "OK"), (Severity.OK, "OK")], id="clean"),
        pytest.param(12, 0, [(Severity.WARN, "IFACE_ERRORS"), (Severity.OK, "OK")], id="0.2 errors/s warns"),
        pytest.param(
            60, 0, [(Severity.CRIT, "IFACE_ERRORS"), (Severity.OK, "OK")], id="1 error/s is critical"
        ),
        pytest.param(0, 600, [(Severity.OK, "OK"), (Severity.WARN, "IFACE_DROPS")], id="10 drops/s warns"),
    ],
)
def test_error_and_drop_rates(errors, drops, expected):
    params = InterfacesParams()
    store: dict[str, Any] = {}
    first = state(rx_bytes=1000, tx_bytes=0, rx_errors=5, rx_drops=5)
    second = state(rx_bytes=61000, tx_bytes=6000, rx_errors=5 + errors, rx_drops=5 + drops)
    assert results(evaluate_interfaces(params, InterfacesSection(0.0, (first,), ()), store)) == [
        ("eth0", Severity.OK, "OK")
    ]
    out = list(evaluate_interfaces(params, InterfacesSection(60.0, (second,), ()), store))
    assert [(s, k) for _, s, k in results(out)[1:]] == expected
    labels = {"interface": "eth0"}
    assert Metric("net_rx_bytes_per_second", 1000.0, Unit.BYTES_PER_SECOND, labels) in out
    assert Metric("net_tx_bytes_per_second", 100.0, Unit.BYTES_PER_SECOND, labels) in out
    assert Metric("net_rx_errors_per_second", errors / 60, Unit.PER_SECOND, labels) in out
    assert Metric("net_link_speed_bytes_per_second", 125_000_000, Unit.BYTES_PER_SECOND, labels) in out
    assert Metric("net_link_utilisation_percent", 1000 / 125_000_000 * 100, Unit.PERCENT, labels) in out


def test_utilisation_levels_are_optional():
    params = InterfacesParams(levels_utilisation_percent=(50.0, 90.0))
    store: dict[str, Any] = {}
    evaluate = evaluate_interfaces
    list(evaluate(params, InterfacesSection(0.0, (state(speed=10),), ()), store))
    out = list(evaluate(params, InterfacesSection(1.0, (state(speed=10, tx_bytes=1_000_000),), ()), store))
    assert ("eth0", Severity.WARN, "IFACE_SATURATED") in results(out)


def test_store_forgets_vanished_interfaces():
    params = InterfacesParams()
    store: dict[str, Any] = {}
    list(evaluate_interfaces(params, InterfacesSection(0.0, (state("veth1"), state("eth0")), ()), store))
    assert any(k.startswith("if:veth1:") for k in store) and "up:veth1" in store
    list(evaluate_interfaces(params, InterfacesSection(1.0, (state("eth0"),), ()), store))
    assert not any("veth1" in k for k in store)
    assert "if:eth0:rx_bytes" in store


def test_down_interface_gets_no_rates():
    out = list(
        evaluate_interfaces(
            InterfacesParams(),
            InterfacesSection(0.0, (state(admin_up=False, carrier=None, speed=None),), ()),
            {},
        )
    )
    assert [m.name for m in out if isinstance(m, Metric)] == ["net_link_up_boolean"]
