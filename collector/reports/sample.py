# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""Realistic sample reports: for tests, the benchmark and a look at what customers receive.

``sample_inspection()`` is a customer with 12 hosts over the five layers, findings of
every severity, trends, a comparison and one offline host; ``synthetic_inspection(n)``
scales the same shape to ``n`` hosts; ``sample_fault_analysis()`` is an emergency case
(storage latency on a database host) with its timeline and evidence.

    python -m collector.reports.sample --out /tmp/reports   # 2 reports x 3 formats x 2 languages

>>> report = sample_inspection()
>>> report.coverage.selected, report.coverage.answered
(12, 11)
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from checks.api import Layer, Severity, Unit
from collector.reports.model import (
    CapacityTrend,
    CaseInfo,
    CaseNote,
    Comparison,
    Coverage,
    Customer,
    EvidenceChart,
    FaultAnalysisReport,
    Finding,
    FindingChange,
    FindingInstance,
    HostSummary,
    Impact,
    InspectionReport,
    InventoryChange,
    LayerScore,
    LocalText,
    OfflineHost,
    ProbableCause,
    Recommendation,
    RejectedCause,
    SignOff,
    TimelineEvent,
    TimelineKind,
    Trend,
)
from collector.schedule.cron import load_zone

__all__ = ["SAMPLE_LOGO_SVG", "sample_fault_analysis", "sample_inspection", "synthetic_inspection"]

TZ = "Asia/Shanghai"
_ZONE = load_zone(TZ)

SAMPLE_LOGO_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="180" height="44" viewBox="0 0 180 44">'
    b'<rect x="2" y="6" width="32" height="32" rx="6" fill="#1f4e79"/>'
    b'<path d="M10 30 L18 14 L26 30 Z" fill="#ffffff"/>'
    b'<text x="42" y="29" font-family="DejaVu Sans, sans-serif" font-size="17" font-weight="bold" '
    b'fill="#1f4e79">HENGXIN</text></svg>'
)
"""A small vector logo (an SVG logo is the usual customer asset; PNG and JPEG work too)."""

CUSTOMER = Customer(name="Hengxin Logistics Co., Ltd.", timezone=TZ, logo=SAMPLE_LOGO_SVG)
SIGNOFF = SignOff(prepared_by="Wang Lei", reviewed_by="Chen Jing", organisation="remote-diag Service Center")


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=_ZONE)


def T(en: str, zh: str) -> LocalText:
    """Shorthand for a :class:`LocalText`."""
    return LocalText(en, zh)


# (name, os, version, layer of its role)
HOSTS: tuple[tuple[str, str, str], ...] = (
    ("lb1", "Rocky Linux 9.3", "4.2.1"),
    ("web1", "Rocky Linux 9.3", "4.2.1"),
    ("web2", "Rocky Linux 9.3", "4.2.0"),
    ("web3", "Rocky Linux 9.3", "4.2.1"),
    ("app1", "Rocky Linux 9.3", "4.2.1"),
    ("app2", "Rocky Linux 9.3", "4.2.1"),
    ("db1", "Rocky Linux 9.2", "4.2.1"),
    ("db2", "Rocky Linux 9.2", "4.2.1"),
    ("mq1", "Ubuntu 22.04.4 LTS", "4.2.1"),
    ("cache1", "Ubuntu 22.04.4 LTS", "4.2.1"),
    ("nfs1", "Debian 12.5", "4.2.1"),
    ("mon1", "Debian 12.5", "4.2.1"),
)

FINDINGS: tuple[Finding, ...] = (
    Finding(
        key="FS_NEARLY_FULL",
        severity=Severity.CRIT,
        layer=Layer.STORAGE,
        title=T("File system nearly full", "文件系统即将写满"),
        recommendation=T(
            "Extend the volume or move old WAL archives to the archive server within two days.",
            "请在两天内扩容该卷，或将旧的 WAL 归档文件迁移至归档服务器。",
        ),
        instances=(
            FindingInstance(
                "db1",
                T(
                    "96.2 % used (critical at 95 %); full in about 1.9 days",
                    "已用 96.2 %（严重阈值 95 %）；约 1.9 天后写满",
                ),
                "/var/lib/pgsql",
            ),
        ),
    ),
    Finding(
        key="SERVICE_UNREACHABLE",
        severity=Severity.CRIT,
        layer=Layer.APPLICATION,
        title=T("Service endpoint unreachable", "服务端点无法访问"),
        recommendation=T(
            "Restart the order service on app2 and check its log for the cause of the stop.",
            "请重启 app2 上的订单服务，并检查其日志以确定停止原因。",
        ),
        instances=(
            FindingInstance(
                "app2", T("TCP connect to 127.0.0.1:8443 refused", "连接 127.0.0.1:8443 被拒绝"), "orders"
            ),
        ),
    ),
    Finding(
        key="MEMORY_PRESSURE",
        severity=Severity.WARN,
        layer=Layer.HOST,
        title=T("Memory pressure", "内存压力偏高"),
        recommendation=T(
            "Lower the JVM heap of the batch worker or add 8 GiB of memory.",
            "请调低批处理进程的 JVM 堆内存，或增加 8 GiB 内存。",
        ),
        instances=(
            FindingInstance(
                "app1", T("Available memory 6.1 % (warning below 10 %)", "可用内存 6.1 %（低于 10 % 告警）")
            ),
        ),
    ),
    Finding(
        key="SWAP_IN_ACTIVE",
        severity=Severity.WARN,
        layer=Layer.HOST,
        title=T("Pages swapped in", "存在换入页面"),
        recommendation=T(
            "Find the process being swapped and reduce its memory; see the memory finding.",
            "请找出被换出的进程并降低其内存占用，参见内存压力问题。",
        ),
        instances=(
            FindingInstance(
                "app1", T("412 pages/s swapped in over the last hour", "过去一小时每秒换入 412 页")
            ),
        ),
    ),
    Finding(
        key="CERT_EXPIRING",
        severity=Severity.WARN,
        layer=Layer.APPLICATION,
        title=T("TLS certificate expiring", "TLS 证书即将过期"),
        recommendation=T(
            "Renew the certificate for shop.hengxin.example before it expires.",
            "请在证书过期前为 shop.hengxin.example 续签证书。",
        ),
        instances=(
            FindingInstance("lb1", T("Expires in 17 days (2026-12-12)", "17 天后过期（2026-12-12）"), ":443"),
        ),
    ),
    Finding(
        key="IFACE_ERRORS",
        severity=Severity.WARN,
        layer=Layer.NETWORK,
        title=T("Interface receive errors", "网卡接收错误"),
        recommendation=T(
            "Check the cable and the switch port of mq1; replace the cable if errors continue.",
            "请检查 mq1 的网线与交换机端口；若错误持续，请更换网线。",
        ),
        instances=(
            FindingInstance("mq1", T("38 receive errors per minute", "每分钟 38 个接收错误"), "eth0"),
        ),
    ),
    Finding(
        key="CLOCK_UNSYNCHRONIZED",
        severity=Severity.WARN,
        layer=Layer.HOST,
        title=T("Clock not synchronised", "系统时钟未同步"),
        recommendation=T(
            "Enable chronyd and point it at the customer's NTP servers.",
            "请启用 chronyd 并配置客户的 NTP 服务器。",
        ),
        instances=(
            FindingInstance("nfs1", T("Offset 2.4 s, no NTP source selected", "偏差 2.4 秒，未选定 NTP 源")),
        ),
    ),
    Finding(
        key="REBOOT_REQUIRED",
        severity=Severity.WARN,
        layer=Layer.PLATFORM,
        title=T("Reboot required after updates", "更新后需要重启"),
        recommendation=T(
            "Reboot the hosts one at a time in the next maintenance window.",
            "请在下一个维护窗口内逐台重启这些主机。",
        ),
        instances=tuple(
            FindingInstance(
                h,
                T("Kernel updated 9 days ago; running the old kernel", "内核已于 9 天前更新，仍在运行旧内核"),
            )
            for h in ("web1", "cache1")
        ),
    ),
    Finding(
        key="VERSION_DRIFT",
        severity=Severity.WARN,
        layer=Layer.APPLICATION,
        title=T("Product versions differ between hosts", "主机间产品版本不一致"),
        recommendation=T(
            "Upgrade web2 to product version 4.2.1 like the other web servers.",
            "请将 web2 升级至产品版本 4.2.1，与其他 Web 服务器保持一致。",
        ),
        instances=(
            FindingInstance(
                "web2", T("Runs 4.2.0; 10 other hosts run 4.2.1", "运行 4.2.0；其他 10 台主机运行 4.2.1")
            ),
        ),
    ),
    Finding(
        key="CHECK_ERROR",
        severity=Severity.UNKNOWN,
        layer=Layer.PLATFORM,
        title=T("Check could not run", "检查无法执行"),
        recommendation=T(
            "Grant the agent read access to the systemd journal (group systemd-journal).",
            "请授予代理读取 systemd 日志的权限（加入 systemd-journal 组）。",
        ),
        instances=(
            FindingInstance(
                "mon1",
                T("Permission denied reading /var/log/journal", "读取 /var/log/journal 时权限不足"),
                "platform.journal",
            ),
        ),
    ),
)


def _series(
    start: datetime, hours: float, step_h: float, *, base: float, slope: float, noise: float, seed: int
) -> tuple[tuple[datetime, float], ...]:
    rng = random.Random(seed)
    n = int(hours / step_h) + 1
    return tuple(
        (
            start + timedelta(hours=i * step_h),
            round(base + slope * i * step_h + rng.uniform(-noise, noise), 2),
        )
        for i in range(n)
    )


def _host_rows(
    names: Sequence[tuple[str, str, str]], findings: Sequence[Finding], offline: set[str]
) -> list[HostSummary]:
    rows = []
    for name, os_name, version in names:
        mine = [f for f in findings if any(i.host == name for i in f.instances)]
        mine.sort(key=lambda f: -f.severity.rank)
        count = {sev: sum(1 for f in mine if f.severity is sev) for sev in Severity}
        rows.append(
            HostSummary(
                name=name,
                answered=name not in offline,
                worst=Severity.worst(*(f.severity for f in mine)),
                crit=count[Severity.CRIT],
                warn=count[Severity.WARN],
                unknown=count[Severity.UNKNOWN],
                os=os_name,
                product_version=version,
                top_findings=tuple(f.key for f in mine[:3]),
            )
        )
    return rows


def _layer_scores(findings: Sequence[Finding], scores: dict[Layer, int]) -> tuple[LayerScore, ...]:
    out = []
    for layer in Layer:
        mine = [f for f in findings if f.layer is layer]
        out.append(
            LayerScore(
                layer,
                scores[layer],
                crit=sum(1 for f in mine if f.severity is Severity.CRIT),
                warn=sum(1 for f in mine if f.severity is Severity.WARN),
                unknown=sum(1 for f in mine if f.severity is Severity.UNKNOWN),
            )
        )
    return tuple(out)


def _trends(start: datetime) -> tuple[Trend, ...]:
    return (
        Trend(
            title=T("File system use: /var/lib/pgsql", "文件系统使用率：/var/lib/pgsql"),
            metric="storage_fs_used_percent",
            unit=Unit.PERCENT,
            host="db1",
            item="/var/lib/pgsql",
            points=_series(start, 168, 2, base=82.0, slope=2.0 / 24, noise=0.3, seed=1),
            warn=85.0,
            crit=95.0,
            days_until_full=1.9,
        ),
        Trend(
            title=T("Memory in use", "内存使用率"),
            metric="host_memory_used_percent",
            unit=Unit.PERCENT,
            host="app1",
            points=_series(start, 168, 2, base=84.0, slope=1.2 / 24, noise=1.5, seed=2),
            warn=90.0,
            crit=95.0,
        ),
        Trend(
            title=T("Established TCP connections", "已建立的 TCP 连接数"),
            metric="network_tcp_established_count",
            unit=Unit.COUNT,
            host="lb1",
            points=tuple(
                (ts, round(v)) for ts, v in _series(start, 168, 2, base=1800, slope=6.5, noise=120, seed=3)
            ),
        ),
    )


def sample_inspection() -> InspectionReport:
    """The 12-host sample inspection report (巡检报告) for Hengxin Logistics."""
    start, end = _at(18, 9), _at(25, 9)
    offline = {"web3"}
    layers = {Layer.HOST: 78, Layer.NETWORK: 88, Layer.STORAGE: 62, Layer.PLATFORM: 85, Layer.APPLICATION: 70}
    by_key = {f.key: f for f in FINDINGS}
    comparison = Comparison(
        previous_run="insp-2026-11-18-0900",
        previous_at=_at(18, 9, 4),
        previous_score=81,
        new=tuple(
            FindingChange(k, by_key[k].severity, by_key[k].title, tuple(i.host for i in by_key[k].instances))
            for k in ("FS_NEARLY_FULL", "SERVICE_UNREACHABLE", "VERSION_DRIFT")
        ),
        resolved=(
            FindingChange(
                "OOM_KILLS",
                Severity.CRIT,
                T("Processes killed for lack of memory", "进程因内存不足被终止"),
                ("app2",),
            ),
        ),
        persisting=tuple(
            FindingChange(k, by_key[k].severity, by_key[k].title, tuple(i.host for i in by_key[k].instances))
            for k in ("REBOOT_REQUIRED", "MEMORY_PRESSURE")
        ),
        inventory=(
            InventoryChange("web1", "product", "4.2.0", "4.2.1"),
            InventoryChange("db1", "kernel", "5.14.0-362.8.1.el9_3", "5.14.0-427.13.1.el9_4"),
            InventoryChange("cache1", "package redis", "7.0.12", "7.2.4"),
            InventoryChange("mon1", "package node-exporter", None, "1.5.0"),
        ),
        capacity=(
            CapacityTrend(
                "db1", T("File system use", "文件系统使用率"), Unit.PERCENT, 96.2, 2.0, "/var/lib/pgsql", 1.9
            ),
            CapacityTrend(
                "nfs1", T("File system use", "文件系统使用率"), Unit.PERCENT, 71.0, 0.4, "/export", 72.5
            ),
            CapacityTrend("app1", T("Memory in use", "内存使用率"), Unit.PERCENT, 93.9, 1.2, None, None),
            CapacityTrend(
                "lb1",
                T("Established TCP connections", "已建立的 TCP 连接数"),
                Unit.COUNT,
                2892,
                156,
                None,
                None,
            ),
        ),
    )
    return InspectionReport(
        customer=CUSTOMER,
        plan="weekly-full",
        run_id="insp-2026-11-25-0900",
        period_start=start,
        period_end=end,
        generated_at=_at(25, 9, 12),
        coverage=Coverage(12, 11, (OfflineHost("web3", _at(24, 22, 41)),)),
        overall_score=76,
        layers=_layer_scores(FINDINGS, layers),
        findings=FINDINGS,
        hosts=tuple(_host_rows(HOSTS, FINDINGS, offline)),
        signoff=SIGNOFF,
        trends=_trends(start),
        comparison=comparison,
        summary=T(
            "11 of 12 hosts answered. Two critical findings need action this week: the database volume "
            "/var/lib/pgsql on db1 will be full in about two days, and the order service on app2 is down. "
            "The overall score fell from 81 to 76.",
            "12 台主机中有 11 台响应。有两个严重问题需要在本周内处理：db1 上的数据库卷 /var/lib/pgsql "
            "预计约两天后写满；app2 上的订单服务已停止。总体评分由 81 分降至 76 分。",
        ),
    )


def synthetic_inspection(n_hosts: int, seed: int = 7) -> InspectionReport:
    """An inspection of ``n_hosts`` hosts; the sample's findings hit about a fifth of them."""
    if n_hosts < 1:
        raise ValueError("n_hosts must be at least 1")
    rng = random.Random(seed)
    names = [
        (f"host-{i:04d}", "Rocky Linux 9.3", "4.2.1" if i % 17 else "4.2.0") for i in range(1, n_hosts + 1)
    ]
    offline = {names[i][0] for i in range(0, n_hosts, 97)}
    online = [n for n, _, _ in names if n not in offline]
    findings = []
    for template in FINDINGS:
        hit = sorted(rng.sample(online, k=min(len(online), max(1, n_hosts // 40))))
        findings.append(
            Finding(
                template.key,
                template.severity,
                template.layer,
                template.title,
                template.recommendation,
                tuple(
                    FindingInstance(h, template.instances[0].evidence, template.instances[0].item)
                    for h in hit
                ),
            )
        )
    start, end = _at(18, 9), _at(25, 9)
    layers = {Layer.HOST: 81, Layer.NETWORK: 90, Layer.STORAGE: 74, Layer.PLATFORM: 86, Layer.APPLICATION: 79}
    return InspectionReport(
        customer=CUSTOMER,
        plan="weekly-full",
        run_id="insp-bench",
        period_start=start,
        period_end=end,
        generated_at=_at(25, 9, 30),
        coverage=Coverage(
            n_hosts, n_hosts - len(offline), tuple(OfflineHost(h, _at(24, 3)) for h in sorted(offline))
        ),
        overall_score=82,
        layers=_layer_scores(findings, layers),
        findings=tuple(findings),
        hosts=tuple(_host_rows(names, findings, offline)),
        signoff=SIGNOFF,
        trends=_trends(start),
        comparison=sample_inspection().comparison,
        summary=T("Synthetic inspection for the benchmark.", "用于性能测试的模拟巡检。"),
    )


def _wave(
    start: datetime, minutes: int, onset_min: int, recover_min: int, base: float, peak: float, seed: int
) -> tuple[tuple[datetime, float], ...]:
    rng = random.Random(seed)
    points = []
    for m in range(0, minutes + 1):
        if onset_min <= m < recover_min:
            ramp = min(1.0, (m - onset_min) / 3)
            value = base + (peak - base) * ramp * (0.85 + 0.15 * math.sin(m / 2))
        else:
            value = base
        points.append((start + timedelta(minutes=m), round(value * (1 + rng.uniform(-0.06, 0.06)), 4)))
    return tuple(points)


def sample_fault_analysis() -> FaultAnalysisReport:
    """The sample fault-analysis report (事故分析报告): storage latency on db1 slowed the shop."""
    onset, recovered = _at(24, 14, 2), _at(24, 14, 48)
    window_start = _at(24, 13, 30)
    await_pts = _wave(window_start, 100, 32, 78, 0.004, 0.48, 11)
    latency_pts = _wave(window_start, 100, 33, 78, 0.18, 3.9, 12)
    errors_pts = _wave(window_start, 100, 35, 77, 0.2, 14.0, 13)
    return FaultAnalysisReport(
        customer=CUSTOMER,
        case=CaseInfo(
            case_id="CASE-2026-0142",
            incident_id="inc-7f3a91",
            severity=Severity.CRIT,
            title=T("Shop checkout slow: storage latency on db1", "商城结算缓慢：db1 存储延迟过高"),
            engineer="Wang Lei",
            opened_at=_at(24, 14, 5),
            closed_at=_at(25, 10, 30),
        ),
        generated_at=_at(25, 11, 0),
        summary=T(
            "On 24 November from 14:02 to 14:48 the shop's checkout was slow and 6 % of requests failed. "
            "The database host db1 had disabled its RAID write cache during a battery learn cycle, so disk "
            "writes took up to 480 ms. The cache was re-enabled and the learn cycle moved to Sunday night.",
            "11 月 24 日 14:02 至 14:48，商城结算缓慢，6 % 的请求失败。数据库主机 db1 的 RAID 控制器在电池"
            "学习周期中关闭了写缓存，导致磁盘写入延迟最高达 480 毫秒。"
            "已重新启用写缓存，并将学习周期调整至周日夜间。",
        ),
        impact=Impact(
            hosts=("db1", "app1", "app2", "web1", "web2"),
            start=onset,
            end=recovered,
            hosts_total=12,
            description=T(
                "Checkout requests took up to 3.9 s (normally 0.2 s); about 1,900 orders were delayed and "
                "112 failed and were retried by customers.",
                "结算请求耗时最高 3.9 秒（正常为 0.2 秒）；约 1,900 笔订单延迟，112 笔失败后由用户重试。",
            ),
        ),
        timeline=(
            TimelineEvent(
                onset, TimelineKind.ONSET, T("Disk write latency on db1 rises", "db1 磁盘写入延迟升高"), "db1"
            ),
            TimelineEvent(
                _at(24, 14, 4),
                TimelineKind.DETECTED,
                T("Latency anomaly on 3 series of db1 and app1", "db1 与 app1 的 3 个指标出现延迟异常"),
                "db1",
            ),
            TimelineEvent(
                _at(24, 14, 5),
                TimelineKind.CASE_OPENED,
                T("Emergency case opened, severity critical", "创建应急工单，严重程度：严重"),
            ),
            TimelineEvent(_at(24, 14, 11), TimelineKind.ACKNOWLEDGED, None, None, "Wang Lei"),
            TimelineEvent(
                _at(24, 14, 26),
                TimelineKind.ACTION,
                T("RAID write cache re-enabled", "重新启用 RAID 写缓存"),
                "db1",
                "Wang Lei",
            ),
            TimelineEvent(
                recovered, TimelineKind.RECOVERED, T("All signals back to baseline", "所有指标恢复至基线水平")
            ),
            TimelineEvent(
                _at(25, 10, 30),
                TimelineKind.CLOSED,
                T("Closed after customer confirmation", "经客户确认后关闭"),
                None,
                "Chen Jing",
            ),
        ),
        cause=ProbableCause(
            label=T("Storage on db1: RAID write cache disabled", "db1 存储层：RAID 写缓存被关闭"),
            confidence=0.82,
            layer=Layer.STORAGE,
            host="db1",
            reasoning=(
                T(
                    "Disk write latency on db1 rose first (14:02), one minute before application latency.",
                    "db1 磁盘写入延迟最先升高（14:02），比应用延迟早一分钟。",
                ),
                T(
                    "The storage layer is below the application layer: its fault explains the slow requests.",
                    "存储层位于应用层之下，其故障可以解释请求变慢。",
                ),
                T(
                    "The controller log shows a battery learn cycle, in write-through mode, 14:01 to 14:47.",
                    "控制器日志显示 14:01 至 14:47 进行电池学习周期，期间处于直写模式。",
                ),
            ),
            alternatives=(
                RejectedCause(
                    T("Product upgrade to 4.2.1 on web1", "web1 产品升级至 4.2.1"),
                    0.11,
                    T(
                        "The upgrade was two days earlier, and web2 (still on 4.2.0) slowed down too.",
                        "升级发生在两天前，且仍运行 4.2.0 的 web2 同样变慢。",
                    ),
                ),
                RejectedCause(
                    T("Network between the application and database hosts", "应用主机与数据库主机之间的网络"),
                    0.04,
                    T(
                        "No retransmissions, interface errors or packet loss in the period.",
                        "该时段内没有重传、网卡错误或丢包。",
                    ),
                ),
            ),
        ),
        signoff=SIGNOFF,
        evidence=(
            EvidenceChart(
                T("Disk write latency", "磁盘写入延迟"),
                "storage_disk_write_await_seconds",
                Unit.SECONDS,
                "db1",
                await_pts,
                onset,
                recovered,
                threshold=0.05,
                baseline=0.004,
            ),
            EvidenceChart(
                T("Checkout latency (p95)", "结算请求延迟（p95）"),
                "application_http_latency_seconds",
                Unit.SECONDS,
                "app1",
                latency_pts,
                onset,
                recovered,
                threshold=1.0,
                baseline=0.18,
            ),
            EvidenceChart(
                T("Failed requests", "失败请求数"),
                "application_http_errors_per_second",
                Unit.PER_SECOND,
                "web1",
                errors_pts,
                onset,
                recovered,
                baseline=0.2,
            ),
        ),
        actions=(
            CaseNote(
                _at(24, 14, 15),
                "Wang Lei",
                T(
                    "Found the controller in write-through mode (battery learn cycle).",
                    "发现控制器处于直写模式（电池学习周期）。",
                ),
            ),
            CaseNote(
                _at(24, 14, 26),
                "Wang Lei",
                T("Re-enabled the write cache with the customer's approval.", "经客户同意后重新启用写缓存。"),
            ),
            CaseNote(
                _at(24, 16, 0),
                "Chen Jing",
                T(
                    "Moved the learn cycle to Sundays 02:00 and added a check for it.",
                    "将学习周期调整至每周日 02:00，并为其增加检查项。",
                ),
            ),
        ),
        recommendations=(
            Recommendation(
                T(
                    "Schedule RAID battery learn cycles inside the weekly maintenance window.",
                    "将 RAID 电池学习周期安排在每周维护窗口内。",
                ),
                1,
                "Hengxin IT",
            ),
            Recommendation(
                T(
                    "Alert when a RAID controller switches to write-through mode.",
                    "RAID 控制器切换到直写模式时发出告警。",
                ),
                1,
                "remote-diag",
            ),
            Recommendation(
                T(
                    "Replace the controller battery of db1 (4 years old).",
                    "更换 db1 已使用 4 年的控制器电池。",
                ),
                2,
                "Hengxin IT",
            ),
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Write the sample reports in every format and language to ``--out``."""
    from collector.reports.render import render_fault_analysis, render_inspection

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="directory to write the reports into")
    parser.add_argument("--formats", default="html,pdf,json", help="comma-separated: html,pdf,json")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    inspection, fault = sample_inspection(), sample_fault_analysis()
    for fmt in args.formats.split(","):
        for lang in ("en", "zh-CN"):
            (args.out / f"inspection.{lang}.{fmt}").write_bytes(render_inspection(inspection, fmt, lang))
            (args.out / f"fault-analysis.{lang}.{fmt}").write_bytes(render_fault_analysis(fault, fmt, lang))
            print(args.out / f"inspection.{lang}.{fmt}")
            print(args.out / f"fault-analysis.{lang}.{fmt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
