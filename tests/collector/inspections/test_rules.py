"""Each inspection rule, table-driven, plus the rule table's conformance with the checks."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import pytest

from checks.api import Layer
from checks.registry import all_checks, catalogue
from collector.inspections.catalogue import CATALOGUE, RESULT_EVIDENCE
from collector.inspections.engine import evaluate_rules
from collector.inspections.facts import DAY_S, HostFacts, MetricSummary
from collector.inspections.rules import RULES
from tests.collector.inspections.builders import T0, flat, host, inventory, line, res

GIB = 2**30

Row = tuple[str, str, str | None, str]


def fire(key: str, hosts: Sequence[HostFacts]) -> list[Row]:
    """(host, severity, item, English evidence) of every instance of rule ``key``."""
    findings, errors = evaluate_rules(hosts, [RULES[key]])
    assert errors == []
    assert all(f.key == key for f in findings)
    return [(i.host, i.severity.value, i.item, i.evidence.en) for f in findings for i in f.instances]


def points(name: str, values: Sequence[float], labels: dict[str, str] | None = None) -> MetricSummary:
    return MetricSummary.from_points(name, labels or {}, [(T0 + i * 60.0, v) for i, v in enumerate(values)])


CASES = [
    # ------------------------------------------------------------------ host
    pytest.param(
        "MEMORY_PRESSURE",
        [
            host(
                results=[res("host.memory", "MEM_LOW", "CRIT")],
                metrics=[
                    flat("host_memory_available_bytes", GIB),
                    flat("host_memory_available_percent", 4.0),
                ],
            )
        ],
        [("db1", "CRIT", None, "1.0 GiB of memory available (4.0%)")],
        id="memory pressure with evidence from the metrics",
    ),
    pytest.param(
        "MEMORY_PRESSURE",
        [host(results=[res("host.pressure", "PRESSURE_MEMORY", "WARN", summary="some 30%")])],
        [("db1", "WARN", None, "host.pressure reported PRESSURE_MEMORY: some 30%")],
        id="memory pressure without metrics repeats the check",
    ),
    pytest.param(
        "MEMORY_PRESSURE",
        [
            host(
                results=[res("host.memory", "OK", "OK")], metrics=[flat("host_memory_available_percent", 4.0)]
            )
        ],
        [],
        id="memory fine in the latest run",
    ),
    pytest.param(
        "MEMORY_GROWING",
        [
            host(
                metrics=[
                    line("host_memory_used_bytes", 8 * GIB, GIB),
                    flat("host_memory_total_bytes", 16 * GIB),
                ]
            )
        ],
        [
            (
                "db1",
                "CRIT",
                None,
                "memory in use grows by 1.0 GiB per day (10.0 GiB of 16.0 GiB used); full in about 6.0 days",
            )
        ],
        id="memory growing, out in 6 days",
    ),
    pytest.param(
        "MEMORY_GROWING",
        [
            host(
                metrics=[
                    line("host_memory_used_bytes", 8 * GIB, 0.1 * GIB),
                    flat("host_memory_total_bytes", 16 * GIB),
                ]
            )
        ],
        [],
        id="memory growing slowly",
    ),
    pytest.param(
        "MEMORY_GROWING",
        [
            host(
                metrics=[
                    line("host_memory_used_bytes", 8 * GIB, GIB, days=0.1),
                    flat("host_memory_total_bytes", 16 * GIB),
                ]
            )
        ],
        [],
        id="memory history too short for a rate",
    ),
    pytest.param(
        "SWAP_IN_ACTIVE",
        [host(metrics=[points("host_swap_in_pages_per_second", [20, 50, 80])])],
        [("db1", "WARN", None, "on average 50 pages swapped in per second (peak 80)")],
        id="swap-in from history",
    ),
    pytest.param(
        "SWAP_IN_ACTIVE",
        [host(metrics=[flat("host_swap_in_pages_per_second", 5)])],
        [],
        id="little swap-in",
    ),
    pytest.param(
        "SWAP_IN_ACTIVE",
        [host(metrics=[flat("host_swap_in_pages_per_second", 150)])],
        [("db1", "CRIT", None, "on average 150 pages swapped in per second (peak 150)")],
        id="heavy swap-in is critical",
    ),
    pytest.param(
        "SWAP_NEARLY_FULL",
        [host(results=[res("host.swap", "SWAP_USAGE_HIGH")], metrics=[flat("host_swap_used_percent", 92)])],
        [("db1", "WARN", None, "92.0% of swap space in use")],
        id="swap nearly full",
    ),
    pytest.param(
        "OOM_KILLS",
        [host(metrics=[points("host_oom_kills_count", [0, 2, 1])])],
        [("db1", "CRIT", None, "3 processes killed by the OOM killer during the period")],
        id="oom kills summed over the period",
    ),
    pytest.param(
        "OOM_KILLS", [host(metrics=[points("host_oom_kills_count", [0, 0])])], [], id="no oom kills"
    ),
    pytest.param(
        "ZOMBIE_PROCESSES",
        [host(results=[res("host.processes", "ZOMBIES")], metrics=[flat("host_zombie_processes_count", 42)])],
        [("db1", "WARN", None, "42 zombie processes")],
        id="zombies",
    ),
    pytest.param(
        "FD_EXHAUSTION",
        [
            host(
                results=[
                    res("host.file_descriptors", "FD_SYSTEM_EXHAUSTION", "CRIT"),
                    res("host.file_descriptors", "FD_PROCESS_NEAR_LIMIT", "WARN", item="java"),
                ],
                metrics=[
                    points("host_fd_system_usage_percent", [90, 95]),
                    flat("host_fd_process_usage_max_percent", 85),
                ],
            )
        ],
        [
            ("db1", "CRIT", None, "95.0% of the file-handle limit in use"),
            ("db1", "WARN", "java", "85.0% of the file-handle limit in use"),
        ],
        id="fd exhaustion host-wide and per process",
    ),
    pytest.param(
        "PID_EXHAUSTION",
        [host(results=[res("host.processes", "PID_EXHAUSTION", "CRIT", summary="Threads: 97% of pid_max")])],
        [("db1", "CRIT", None, "host.processes reported PID_EXHAUSTION: Threads: 97% of pid_max")],
        id="pid exhaustion",
    ),
    pytest.param(
        "CLOCK_UNSYNCHRONISED",
        [
            host(
                results=[res("host.clock", "CLOCK_OFFSET_HIGH", "CRIT")],
                metrics=[flat("host_clock_offset_seconds", -0.8)],
            )
        ],
        [("db1", "CRIT", None, "clock offset 800.0 ms")],
        id="clock offset",
    ),
    pytest.param(
        "CLOCK_UNSYNCHRONISED",
        [host(metrics=[flat("host_clock_synchronized_boolean", 0)])],
        [("db1", "WARN", None, "clock offset —")],
        id="clock unsynchronised in the history",
    ),
    pytest.param(
        "CPU_SATURATED",
        [host(metrics=[points("host_cpu_busy_percent", [80, 90, 100])])],
        [("db1", "WARN", None, "CPU busy 90.0% on average (peak 100.0%)")],
        id="cpu busy on average",
    ),
    pytest.param(
        "CPU_SATURATED",
        [host(results=[res("host.load", "LOAD_HIGH", "CRIT")], metrics=[flat("host_cpu_busy_percent", 50)])],
        [("db1", "CRIT", None, "CPU busy 50.0% on average (peak 50.0%)")],
        id="load high in the latest run",
    ),
    pytest.param(
        "CPU_STEAL",
        [
            host(
                metrics=[
                    flat("host_cpu_mode_percent", 12, {"mode": "steal"}),
                    flat("host_cpu_mode_percent", 50, {"mode": "user"}),
                ]
            )
        ],
        [("db1", "WARN", None, "12.0% of CPU time stolen")],
        id="cpu steal",
    ),
    pytest.param(
        "UNEXPECTED_REBOOT",
        [
            host(
                results=[
                    res("host.uptime", "HOST_REBOOTED_UNEXPECTEDLY", "CRIT", summary="Rebooted 5 min ago")
                ]
            )
        ],
        [("db1", "CRIT", None, "host.uptime reported HOST_REBOOTED_UNEXPECTEDLY: Rebooted 5 min ago")],
        id="unexpected reboot",
    ),
    pytest.param(
        "KERNEL_ERRORS",
        [
            host(
                results=[res("host.kernel_events", "KERNEL_HUNG_TASK", "CRIT", summary="hung")],
                metrics=[
                    points("host_kernel_events_count", [1, 3], {"kind": "io_error"}),
                    points("host_kernel_events_count", [0, 1], {"kind": "segfault"}),
                    points("host_kernel_events_count", [0, 0], {"kind": "lockup"}),
                ],
            )
        ],
        [
            ("db1", "CRIT", "hung_task", "host.kernel_events reported KERNEL_HUNG_TASK: hung"),
            ("db1", "CRIT", "io_error", "4 kernel error lines of kind io_error"),
            ("db1", "WARN", "segfault", "1 kernel error lines of kind segfault"),
        ],
        id="kernel errors per kind",
    ),
    # ------------------------------------------------------------------ network
    pytest.param(
        "IFACE_DOWN",
        [host(results=[res("network.interfaces", "IFACE_DOWN", "CRIT", item="eth1")])],
        [("db1", "CRIT", "eth1", "interface eth1 is down or missing")],
        id="interface down",
    ),
    pytest.param(
        "IFACE_ERRORS",
        [
            host(
                results=[res("network.interfaces", "IFACE_DROPS", "CRIT", item="eth1")],
                metrics=[
                    flat("net_rx_errors_per_second", 2, {"interface": "eth0"}),
                    flat("net_tx_drops_per_second", 0.1, {"interface": "eth1"}),
                    flat("net_rx_errors_per_second", 0.2, {"interface": "eth2"}),
                ],
            )
        ],
        [
            ("db1", "WARN", "eth0", "interface eth0: up to 2 errors or drops per second"),
            ("db1", "CRIT", "eth1", "interface eth1: up to 0.1 errors or drops per second"),
        ],
        id="interface errors from history and results",
    ),
    pytest.param(
        "TCP_RETRANSMISSIONS",
        [host(metrics=[flat("net_tcp_retransmit_percent", 6)])],
        [("db1", "CRIT", None, "6.0% of TCP segments retransmitted on average")],
        id="retransmissions high",
    ),
    pytest.param(
        "TCP_RETRANSMISSIONS",
        [host(metrics=[flat("net_tcp_retransmit_percent", 1)])],
        [],
        id="retransmissions low",
    ),
    pytest.param(
        "CLOSE_WAIT_LEAK",
        [
            host(
                results=[res("network.tcp_states", "TCP_CLOSE_WAIT_HIGH")],
                metrics=[
                    flat("net_tcp_connections_count", 300, {"state": "CLOSE_WAIT", "family": "ipv4"}),
                    flat("net_tcp_connections_count", 20, {"state": "CLOSE_WAIT", "family": "ipv6"}),
                    flat("net_tcp_connections_count", 1000, {"state": "ESTABLISHED", "family": "ipv4"}),
                ],
            )
        ],
        [("db1", "WARN", None, "320 TCP connections in CLOSE_WAIT")],
        id="close-wait leak counts both families",
    ),
    pytest.param(
        "CONNTRACK_NEARLY_FULL",
        [host(metrics=[points("network_conntrack_used_percent", [50, 85, 60])])],
        [("db1", "WARN", None, "conntrack table up to 85.0% full")],
        id="conntrack peak",
    ),
    pytest.param(
        "CONNTRACK_NEARLY_FULL",
        [host(results=[res("host.kernel_events", "KERNEL_CONNTRACK_FULL", "CRIT", summary="table full")])],
        [("db1", "CRIT", None, "host.kernel_events reported KERNEL_CONNTRACK_FULL: table full")],
        id="conntrack full in the kernel log",
    ),
    pytest.param(
        "DNS_PROBLEMS",
        [
            host(
                results=[
                    res("network.dns", "DNS_FAILED", "CRIT", item="example.com"),
                    res("network.dns", "DNS_SLOW", "WARN", item="example.com"),
                    res("network.dns", "DNS_NO_NAMESERVER", "CRIT", summary="no nameserver"),
                ]
            )
        ],
        [
            ("db1", "CRIT", None, "network.dns reported DNS_NO_NAMESERVER: no nameserver"),
            ("db1", "CRIT", "example.com", "resolving example.com failed or was slow"),
        ],
        id="dns failing, one instance per name",
    ),
    pytest.param(
        "LISTEN_QUEUE_OVERFLOW",
        [host(metrics=[flat("net_tcp_listen_overflows_per_second", 0.5)])],
        [("db1", "WARN", None, "up to 0.5 connections dropped per second")],
        id="listen overflows",
    ),
    pytest.param(
        "ENDPOINT_UNREACHABLE",
        [host(results=[res("network.tcp_connect", "TCP_CONNECT_FAILED", "CRIT", item="db:5432")])],
        [("db1", "CRIT", "db:5432", "connecting to db:5432 failed")],
        id="endpoint unreachable",
    ),
    # ------------------------------------------------------------------ storage
    pytest.param(
        "FS_FILLING_UP",
        [
            host(
                metrics=[
                    flat("storage_fs_days_until_full_days", 5, {"mountpoint": "/var"}),
                    flat("storage_fs_growth_bytes_per_second", 1e5, {"mountpoint": "/var"}),
                    flat("storage_fs_days_until_full_days", 45, {"mountpoint": "/"}),
                ]
            )
        ],
        [("db1", "CRIT", "/var", "/var: full in about 5.0 days at the current growth of 8.0 GiB per day")],
        id="filling up from the forecast check",
    ),
    pytest.param(
        "FS_FILLING_UP",
        [
            host(
                metrics=[
                    line("storage_fs_free_bytes", 100 * GIB, -5 * GIB, labels={"mountpoint": "/data"}),
                    line("storage_fs_free_bytes", 100 * GIB, -1 * GIB, labels={"mountpoint": "/srv"}),
                ]
            )
        ],
        [("db1", "WARN", "/data", "/data: full in about 18 days at the current growth of 5.0 GiB per day")],
        id="filling up from free-space history",
    ),
    pytest.param(
        "FS_NEARLY_FULL",
        [
            host(
                results=[res("storage.filesystem", "FS_NEARLY_FULL", "CRIT", item="/")],
                metrics=[
                    flat("storage_fs_used_percent", 93.2, {"mountpoint": "/"}),
                    flat("storage_fs_used_percent", 10, {"mountpoint": "/boot"}),
                ],
            )
        ],
        [("db1", "CRIT", "/", "/: 93.2% used")],
        id="filesystem nearly full",
    ),
    pytest.param(
        "INODE_EXHAUSTION",
        [
            host(
                results=[res("storage.filesystem", "FS_INODES_NEARLY_FULL", "WARN", item="/var")],
                metrics=[flat("storage_fs_inodes_used_percent", 97, {"mountpoint": "/var"})],
            )
        ],
        [("db1", "WARN", "/var", "/var: 97.0% of inodes used")],
        id="inode exhaustion",
    ),
    pytest.param(
        "FS_READ_ONLY",
        [host(results=[res("storage.readonly", "FS_REMOUNTED_RO", "CRIT", item="/data")])],
        [("db1", "CRIT", "/data", "/data is read-only after an error")],
        id="filesystem read-only",
    ),
    pytest.param(
        "DISK_SLOW",
        [
            host(
                results=[res("storage.disk_io", "DISK_LATENCY_HIGH", "WARN", item="sda")],
                metrics=[points("storage_disk_write_await_seconds", [0.2, 0.3], {"device": "sda"})],
            )
        ],
        [("db1", "WARN", "sda", "sda: write latency 250.0 ms on average")],
        id="disk slow",
    ),
    # ------------------------------------------------------------------ platform
    pytest.param(
        "SYSTEMD_FAILED_UNITS",
        [
            host(
                results=[
                    res("platform.failed_units", "SYSTEMD_FAILED_UNITS", "WARN"),
                    res("platform.systemd_units", "UNIT_NOT_ACTIVE", "CRIT", item="nginx.service"),
                ],
                metrics=[flat("platform_systemd_failed_units_count", 2)],
            )
        ],
        [("db1", "CRIT", None, "3 failed or inactive systemd units")],
        id="failed units",
    ),
    pytest.param(
        "UNIT_RESTARTING",
        [host(results=[res("platform.systemd_units", "UNIT_RESTARTED", item="app.service")])],
        [("db1", "WARN", "app.service", "unit app.service restarted by systemd")],
        id="unit restarting",
    ),
    pytest.param(
        "REBOOT_REQUIRED",
        [
            host(
                results=[
                    res("platform.reboot_required", "REBOOT_REQUIRED", summary="kernel 6.1.0-27 installed")
                ]
            )
        ],
        [
            (
                "db1",
                "WARN",
                None,
                "platform.reboot_required reported REBOOT_REQUIRED: kernel 6.1.0-27 installed",
            )
        ],
        id="reboot required",
    ),
    pytest.param(
        "KERNEL_TAINTED",
        [
            host(
                results=[
                    res("platform.kernel", "KERNEL_WARNED", "WARN", summary="W"),
                    res("platform.kernel", "KERNEL_MACHINE_CHECK", "CRIT", summary="M"),
                ]
            )
        ],
        [("db1", "CRIT", None, "platform.kernel reported KERNEL_MACHINE_CHECK: M")],
        id="kernel tainted folds into one",
    ),
    pytest.param(
        "CERT_EXPIRING",
        [
            host(
                metrics=[
                    flat("platform_tls_cert_expires_in_days", 20, {"endpoint": "api:443"}),
                    flat("app_http_cert_expiry_days", 25, {"endpoint": "api:443"}),
                    flat("platform_cert_file_expires_in_days", 3, {"path": "/etc/ssl/b.pem", "index": "0"}),
                    flat("platform_cert_file_expires_in_days", -3, {"path": "/etc/ssl/a.pem", "index": "0"}),
                    flat("platform_cert_file_expires_in_days", 300, {"path": "/etc/ssl/c.pem", "index": "0"}),
                ]
            )
        ],
        [
            ("db1", "CRIT", "/etc/ssl/b.pem", "/etc/ssl/b.pem: certificate expires in 3.0 days"),
            ("db1", "WARN", "api:443", "api:443: certificate expires in 20 days"),
        ],
        id="certificates expiring, soonest per endpoint",
    ),
    pytest.param(
        "CERT_EXPIRED",
        [
            host(
                results=[
                    res("platform.tls_endpoints", "CERT_EXPIRED", "CRIT", item="old:443", summary="expired")
                ],
                metrics=[
                    flat("platform_cert_file_expires_in_days", -3, {"path": "/etc/ssl/a.pem", "index": "0"})
                ],
            )
        ],
        [
            ("db1", "CRIT", "/etc/ssl/a.pem", "/etc/ssl/a.pem: certificate expired 3.0 days ago"),
            ("db1", "CRIT", "old:443", "platform.tls_endpoints reported CERT_EXPIRED: expired"),
        ],
        id="certificates expired",
    ),
    pytest.param(
        "SERVICE_UNREACHABLE",
        [
            host(
                results=[
                    res("network.listening_ports", "PORT_NOT_LISTENING", "CRIT", item="5432"),
                    res("platform.services", "SERVICE_UNREACHABLE", "CRIT", item="redis"),
                ]
            )
        ],
        [
            ("db1", "CRIT", "5432", "5432 did not answer correctly"),
            ("db1", "CRIT", "redis", "redis did not answer correctly"),
        ],
        id="service unreachable",
    ),
    pytest.param(
        "SERVICE_SLOW",
        [host(results=[res("platform.services", "SERVICE_SLOW", item="redis")])],
        [("db1", "WARN", "redis", "redis answered slowly")],
        id="service slow",
    ),
    pytest.param(
        "OS_END_OF_LIFE",
        [host(results=[res("platform.os", "OS_EOL", summary="Debian 10 support ended")])],
        [("db1", "WARN", None, "platform.os reported OS_EOL: Debian 10 support ended")],
        id="os end of life",
    ),
    pytest.param(
        "OS_VERSION_DRIFT",
        [
            host("a", inventory=inventory("12")),
            host("b", inventory=inventory("12")),
            host("c", inventory=inventory("11")),
            host("d", inventory=inventory("10"), answered=False),
        ],
        [("c", "WARN", "debian", "runs debian 11; most hosts run 12")],
        id="os release drift ignores offline hosts",
    ),
    # ------------------------------------------------------------------ application
    pytest.param(
        "HTTP_FAILING",
        [
            host(
                results=[res("application.http", "HTTP_BAD_STATUS", "CRIT", item="shop")],
                metrics=[
                    points("app_http_up_boolean", [1, 0, 1, 1], {"endpoint": "api"}),
                    flat("app_http_up_boolean", 1, {"endpoint": "web"}),
                ],
            )
        ],
        [("db1", "WARN", "api", "api failed"), ("db1", "CRIT", "shop", "shop failed")],
        id="http failing now and during the period",
    ),
    pytest.param(
        "HTTP_SLOW",
        [
            host(
                results=[res("application.http", "HTTP_SLOW", item="shop")],
                metrics=[points("app_http_latency_seconds", [1.0, 0.5, 3.0], {"endpoint": "shop"})],
            )
        ],
        [("db1", "WARN", "shop", "shop: 1.5 s on average (slowest 3.0 s)")],
        id="http slow",
    ),
    pytest.param(
        "PROCESS_MISSING",
        [host(results=[res("application.process", "PROCESS_MISSING", "CRIT", item="billing-worker")])],
        [("db1", "CRIT", "billing-worker", "process group billing-worker is not running")],
        id="process missing",
    ),
    pytest.param(
        "PROCESS_RESOURCES_HIGH",
        [
            host(
                results=[
                    res("application.process", "PROCESS_RSS_HIGH", item="java"),
                    res("application.process", "PROCESS_CPU_HIGH", "CRIT", item="java"),
                ]
            )
        ],
        [("db1", "CRIT", "java", "process group java over its limits")],
        id="process over its limits",
    ),
    pytest.param(
        "LOG_ERROR_RATE",
        [
            host(
                results=[
                    res("application.log_patterns", "LOG_FILE_MISSING", item="/var/log/x.log", summary="gone")
                ],
                metrics=[
                    flat("app_log_matches_per_second", 0.5, {"file": "/var/log/app.log", "pattern": "ERROR"}),
                    flat(
                        "app_log_matches_per_second", 0.001, {"file": "/var/log/app.log", "pattern": "WARN"}
                    ),
                ],
            )
        ],
        [
            (
                "db1",
                "WARN",
                "/var/log/app.log ERROR",
                "/var/log/app.log: pattern ERROR matched 30 lines per minute on average",
            ),
            ("db1", "WARN", "/var/log/x.log", "application.log_patterns reported LOG_FILE_MISSING: gone"),
        ],
        id="log error rate",
    ),
    pytest.param(
        "VERSION_DRIFT",
        [
            host("a", inventory=inventory(products={"billing": "7.4.2", "db": "15"})),
            host("b", inventory=inventory(products={"billing": "7.4.2", "db": "15"})),
            host("c", inventory=inventory(products={"billing": "7.3.0", "db": "15"})),
        ],
        [("c", "WARN", "billing", "runs billing 7.3.0; most hosts run 7.4.2")],
        id="version drift",
    ),
    pytest.param(
        "VERSION_DRIFT",
        [
            host("a", metrics=[flat("app_version_info", 1, {"product": "billing", "version": "7.10.0"})]),
            host("b", metrics=[flat("app_version_info", 1, {"product": "billing", "version": "7.9.1"})]),
        ],
        [("b", "WARN", "billing", "runs billing 7.9.1; most hosts run 7.10.0")],
        id="version drift tie: the highest version is the reference",
    ),
    pytest.param(
        "PRODUCT_VERSION_UNKNOWN",
        [host(results=[res("application.version", "VERSION_UNKNOWN", "UNKNOWN", item="billing")])],
        [("db1", "UNKNOWN", "billing", "the version of billing could not be read")],
        id="version unknown",
    ),
    pytest.param(
        "AGENT_GAPS",
        [host(lost_results=12)],
        [("db1", "WARN", None, "12 results lost by the agent during the period")],
        id="agent gaps",
    ),
    pytest.param("AGENT_GAPS", [host()], [], id="no gaps"),
    pytest.param(
        "AGENT_UNHEALTHY",
        [host(results=[res("application.agent", "AGENT_CHECKS_HUNG", "CRIT")])],
        [("db1", "CRIT", "AGENT_CHECKS_HUNG", "the agent reported AGENT_CHECKS_HUNG")],
        id="agent unhealthy",
    ),
    pytest.param(
        "HOST_NOT_ANSWERING",
        [host("a"), host("b", answered=False, last_seen=T0), host("c", answered=False, last_seen=None)],
        [
            ("b", "WARN", None, "no answer before the deadline; last seen 2025-06-15 15:06 UTC"),
            ("c", "WARN", None, "no answer before the deadline; last seen -"),
        ],
        id="hosts not answering",
    ),
]


@pytest.mark.parametrize(("key", "hosts", "expected"), CASES)
def test_rule(key: str, hosts: list[HostFacts], expected: list[Row]) -> None:
    assert fire(key, hosts) == expected


def test_every_rule_has_a_case() -> None:
    covered = {case.values[0] for case in CASES}
    assert covered == set(RULES)


def test_host_rules_ignore_hosts_that_did_not_answer() -> None:
    stale = host(results=[res("platform.reboot_required", "REBOOT_REQUIRED")], answered=False)
    assert fire("REBOOT_REQUIRED", [stale]) == []


def test_zh_cn_evidence_is_filled_too() -> None:
    findings, _ = evaluate_rules(
        [
            host(
                results=[res("storage.filesystem", "FS_NEARLY_FULL", "CRIT", item="/")],
                metrics=[flat("storage_fs_used_percent", 93.2, {"mountpoint": "/"})],
            )
        ],
        [RULES["FS_NEARLY_FULL"]],
    )
    (finding,) = findings
    assert finding.instances[0].evidence.zh_cn == "/\uff1a已使用 93.2%"  # full-width colon
    assert finding.title.zh_cn == "文件系统空间不足"


def test_a_failing_rule_is_recorded_not_fatal() -> None:
    broken = host(metrics=[flat("storage_fs_days_until_full_days", 5, {"mountpoint": "/"})])
    object.__setattr__(broken, "metrics", "not a tuple of summaries")
    findings, errors = evaluate_rules([broken, host("ok")], [RULES["FS_FILLING_UP"]])
    assert findings == []
    assert len(errors) == 1 and errors[0].startswith("FS_FILLING_UP on db1: AttributeError")


# --------------------------------------------------------------------------- conformance


def test_at_least_25_rules_over_all_five_layers() -> None:
    assert len(RULES) >= 25
    assert {rule.layer for rule in RULES.values()} == set(Layer)


def test_rule_inputs_exist_in_the_check_declarations() -> None:
    checks = all_checks()
    metrics = catalogue()
    for rule in RULES.values():
        for name in rule.checks:
            assert name in checks, f"{rule.key}: unknown check {name}"
        declared_keys = {k for name in rule.checks for k in checks[name].keys}
        declared_metrics = {m for name in rule.checks for m in checks[name].metric_names}
        for key in rule.result_keys:
            assert key in declared_keys, f"{rule.key}: no check of {rule.checks} emits {key}"
        for metric in rule.metrics:
            assert metric in metrics, f"{rule.key}: {metric} is not in the metric catalogue"
            assert metric in declared_metrics, f"{rule.key}: none of {rule.checks} emits {metric}"
        assert rule.host is not None or rule.fleet is not None
        assert rule.checks or rule.fleet is not None, f"{rule.key}: a host rule must read a check"


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


_CJK = re.compile(r"[\u4e00-\u9fff]")


def test_catalogue_covers_every_rule_in_both_languages() -> None:
    assert set(CATALOGUE) == set(RULES)
    for key, entry in CATALOGUE.items():
        for text in (entry.title, entry.evidence, entry.recommendation):
            assert text.en.strip() and text.zh_cn.strip(), key
            assert _CJK.search(text.zh_cn), f"{key}: zh-CN text has no Chinese: {text.zh_cn!r}"
            assert _fields(text.en) == _fields(text.zh_cn), f"{key}: the two languages use different fields"
    assert _fields(RESULT_EVIDENCE.en) == _fields(RESULT_EVIDENCE.zh_cn) == {"check", "result", "summary"}


def test_summary_from_points_rejects_nothing() -> None:
    with pytest.raises(ValueError, match="storage_fs_free_bytes: no points"):
        MetricSummary.from_points("storage_fs_free_bytes", {}, [])


def test_summary_thins_points_but_keeps_aggregates() -> None:
    summary = MetricSummary.from_points("x_count", {}, [(float(i), float(i)) for i in range(1000)])
    assert summary.count == 1000 and summary.max == 999 and summary.mean == 499.5
    assert len(summary.points) <= 201 and summary.points[-1] == (999.0, 999.0)
    assert summary.slope_per_day == pytest.approx(DAY_S)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        pytest.param(
            {"severity": "WARN"}, r"host.swap: not a result record \(KeyError: 'key'\)", id="no key"
        ),
        pytest.param(
            {"key": "X", "severity": "BAD"}, r"host.swap: not a result record \(ValueError", id="bad severity"
        ),
        pytest.param(
            {"key": 3, "severity": "OK"}, r"host.swap: result key must be a string, got 3", id="key not text"
        ),
        pytest.param(["garbled"], r"host.swap: not a result record \(TypeError", id="not a mapping"),
    ],
)
def test_garbled_result_records_are_refused_clearly(record: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HostFacts.build("db1", latest=[("host.swap", T0, [record])])  # type: ignore[list-item]


def test_each_rule_is_declared_beside_its_function_in_the_module_of_its_layer() -> None:
    for key, declared_rule in RULES.items():
        fn = declared_rule.host or declared_rule.fleet
        assert fn is not None, key
        assert fn.__module__ == f"collector.inspections.rules.{declared_rule.layer.value}", key


def test_a_rule_key_declared_twice_is_refused() -> None:
    from checks.api import Layer
    from collector.inspections.rules.base import rule

    with pytest.raises(ValueError, match="MEMORY_PRESSURE is declared twice"):

        @rule("MEMORY_PRESSURE", Layer.HOST, "again")
        def again(host: object) -> list[object]:
            return []
