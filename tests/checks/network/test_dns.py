from __future__ import annotations

import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, Unit
from checks.network.dns import DnsParams, DnsSection, Lookup, collect_dns, evaluate_dns
from checks.probe import Probe
from tests.conftest import fixture_probe


def test_localhost_resolves_fast_and_nameservers_are_counted():
    started = time.monotonic()
    section = collect_dns(fixture_probe("net-basic"), DnsParams())
    assert time.monotonic() - started < 1.0
    (lookup,) = section.lookups
    assert (
        (lookup.name, lookup.error) == ("localhost", None) and lookup.addresses >= 1 and lookup.seconds < 1.0
    )
    assert (section.nameservers, section.resolv_conf_present) == (2, True)


def test_invalid_name_fails_fast_in_an_isolated_network_namespace():
    """Resolve nonexistent.invalid for real, inside a fresh network namespace (only a
    down loopback), so the lookup cannot reach this machine's nameserver."""
    script = (
        "from checks.network.dns import DnsParams, collect_dns, evaluate_dns\n"
        "from checks.probe import Probe\n"
        "p = DnsParams(names=('localhost', 'nonexistent.invalid'))\n"
        "s = collect_dns(Probe(), p)\n"
        "for r in evaluate_dns(p, s, {}):\n"
        "    if hasattr(r, 'key'): print(r.item, r.severity.value, r.key)\n"
        "print('seconds', s.lookups[1].seconds)\n"
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[3]),
    )
    lines = done.stdout.splitlines()
    assert lines[:2] == ["localhost OK OK", "nonexistent.invalid CRIT DNS_FAILED"]
    assert float(lines[2].split()[1]) < 5.0


def test_missing_resolv_conf_counts_zero(tmp_path):
    section = collect_dns(Probe(root=tmp_path), DnsParams())
    assert (section.nameservers, section.resolv_conf_present) == (0, False)


def test_garbled_resolv_conf_has_no_nameserver():
    assert collect_dns(fixture_probe("net-garbled"), DnsParams()).nameservers == 0


@pytest.mark.parametrize(
    ("lookups", "nameservers", "expected"),
    [
        pytest.param([Lookup("a", 0.01, 2, None)], 1, [("a", Severity.OK, "OK")], id="fast"),
        pytest.param([Lookup("a", 0.8, 1, None)], 1, [("a", Severity.WARN, "DNS_SLOW")], id="slow"),
        pytest.param([Lookup("a", 3.0, 1, None)], 1, [("a", Severity.CRIT, "DNS_SLOW")], id="very slow"),
        pytest.param([Lookup("a", 0.1, 0, "Name or service not known")], 1,
                     [("a", Severity.CRIT, "DNS_FAILED")], id="failed"),
        pytest.param([Lookup("a", 0.1, 0, "Temporary failure")], 0,
                     [("a", Severity.CRIT, "DNS_FAILED"), (None, Severity.WARN, "DNS_NO_NAMESERVER")],
                     id="nothing resolves and no nameserver"),
        pytest.param([Lookup("localhost", 0.0001, 1, None)], 0, [("localhost", Severity.OK, "OK")],
                     id="no nameserver but hosts file works"),
    ],
)  # fmt: skip
def test_evaluate(lookups, nameservers, expected):
    out = list(evaluate_dns(DnsParams(), DnsSection(tuple(lookups), nameservers, True), {}))
    assert [(r.item, r.severity, r.key) for r in out if isinstance(r, Result)] == expected
    assert out[0] == Metric("net_dns_nameservers_count", nameservers, Unit.COUNT)
    assert (
        Metric("net_dns_resolve_seconds", lookups[0].seconds, Unit.SECONDS, {"name": lookups[0].name}) in out
    )


def test_params_reject_names_that_cannot_be_looked_up():
    with pytest.raises(ValidationError, match="not a valid host name"):
        DnsParams(names=("a..b",))
    with pytest.raises(ValidationError):
        DnsParams(names=())
