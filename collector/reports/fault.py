# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""Build the fault-analysis report (事故分析报告) of an emergency case from the store.

The case record (:class:`collector.store.cases.CaseRecord`) gives the timeline, the hosts,
the ranked probable causes with their stable ``reason_key`` and ``params``, the incident's
signals and the engineers' notes; the store gives each evidence metric's points around the
onset. Everything is worded from those facts in both languages: the causes' reasons are
rebuilt from ``reason_key`` + ``params`` (never from the English sentence), notes are shown
as the engineer wrote them.

:func:`stored_fault_report` is what the API calls: it serves the stored record when the
case has not changed since it was rendered, else renders, stores and serves a new one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from checks.api import Layer, Severity, Unit
from collector.reports.files import write_report_file
from collector.reports.model import (
    CaseInfo,
    CaseNote,
    Customer,
    EvidenceChart,
    FaultAnalysisReport,
    Impact,
    Lang,
    LocalText,
    ProbableCause,
    Recommendation,
    RejectedCause,
    RemoteSession,
    SignOff,
    TimelineEvent,
    TimelineKind,
)
from collector.reports.on_demand import digest, renders
from collector.reports.render import Format, render_fault_analysis
from collector.schedule.cron import load_zone
from collector.store.case_states import CASE_STATES, LABELS
from collector.store.cases import CaseRecord, CaseRepo
from collector.store.inspections import InspectionRepo
from collector.store.queries import Scope
from collector.store.reports import ReportRecord
from collector.store.series import SeriesRepo
from collector.store.sessions import SessionRepo
from collector.store.store import Store

if TYPE_CHECKING:
    from collector.inspections.runner import Runner

__all__ = ["MAX_CHARTS", "build_fault_report", "stored_fault_report"]

MAX_CHARTS = 4
"""Evidence charts per report: the strongest signals first."""
WINDOW_BEFORE_S = 3600.0
WINDOW_AFTER_MIN_S = 1800.0

_LAYER = {
    Layer.HOST: LocalText("host", "主机"),
    Layer.NETWORK: LocalText("network", "网络"),
    Layer.STORAGE: LocalText("storage", "存储"),
    Layer.PLATFORM: LocalText("platform", "平台"),
    Layer.APPLICATION: LocalText("application", "应用"),
}
_KIND_TITLE = {
    "DEGRADATION": ("Performance degradation", "性能下降"),
    "AGENT_SILENT": ("Agent stopped reporting", "代理停止上报"),
    "SITE_OUTAGE": ("Site or network outage", "站点或网络中断"),
}
_RECOMMENDATIONS = {
    Layer.HOST: LocalText(
        "Review the host's capacity (CPU, memory) and alert before it is exhausted.",
        "评估该主机的容量（CPU、内存），并在资源耗尽前告警。",
    ),
    Layer.NETWORK: LocalText(
        "Check the network path (interfaces, switches, DNS) and add redundancy where it failed.",
        "检查网络路径（网卡、交换机、DNS），并在故障处增加冗余。",
    ),
    Layer.STORAGE: LocalText(
        "Check the storage (disks, controller, filesystems) and alert on its latency and free space.",
        "检查存储（磁盘、控制器、文件系统），并对其延迟和剩余空间设置告警。",
    ),
    Layer.PLATFORM: LocalText(
        "Review the platform services (database, middleware) and their resource limits.",
        "检查平台服务（数据库、中间件）及其资源限制。",
    ),
    Layer.APPLICATION: LocalText(
        "Review the application's configuration and recent releases with the product team.",
        "与产品团队一起检查应用的配置和近期发布。",
    ),
}
_CHANGE_RECOMMENDATION = LocalText(
    "Make changes inside agreed maintenance windows, with a tested rollback plan.",
    "在约定的维护窗口内进行变更，并准备经过测试的回退方案。",
)
_SILENT_RECOMMENDATION = LocalText(
    "Monitor the agent host's power and network, and restart the agent automatically (systemd).",
    "监控代理所在主机的电源和网络，并由 systemd 自动重启代理。",
)


def _layer(value: Any) -> Layer | None:
    try:
        return Layer(value)
    except ValueError:
        return None


def _layer_text(value: Any) -> LocalText:
    layer = _layer(value)
    return _LAYER[layer] if layer is not None else LocalText(str(value or "?"), str(value or "?"))


def _pct(confidence: float) -> str:
    return f"{round(confidence * 100)}%"


class _Clock:
    """Times as the report prints them in prose: the customer's zone, minutes."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone

    def at(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.zone)

    def text(self, ts: float | None) -> str:
        return "-" if ts is None else self.at(ts).strftime("%Y-%m-%d %H:%M")

    def iso(self, value: Any) -> str:
        """An ISO time from cause params, shown in the zone (as given when unparsable)."""
        try:
            return self.text(datetime.fromisoformat(str(value)).timestamp())
        except ValueError:
            return str(value)


def _minutes(seconds: Any) -> tuple[str, str]:
    try:
        m = max(0, round(float(seconds) / 60))
    except (TypeError, ValueError):
        return "?", "?"
    return f"{m} min", f"{m} 分钟"


def cause_label(cause: Mapping[str, Any]) -> LocalText:
    """A short name of a cause candidate in both languages."""
    kind = str(cause.get("kind", ""))
    host = str(cause.get("host") or "")
    params = cause.get("params") or {}
    if kind == "change":
        change = str(params.get("change") or params.get("subject") or "change")
        where_en = f" on {host}" if host else ""
        where_zh = f"{host} 上的" if host else ""
        return LocalText(f"Change{where_en}: {change}", f"{where_zh}变更：{change}")
    if kind == "agent_silent":
        return LocalText(f"Agent on {host} stopped reporting", f"{host} 上的代理停止上报")
    if kind == "site_outage":
        return LocalText("Site or network outage", "站点或网络中断")
    layer = _layer_text(cause.get("layer"))
    return LocalText(f"{layer.en.capitalize()} on {host}", f"{host} 的{layer.zh_cn}层")


def cause_reason(cause: Mapping[str, Any], clock: _Clock) -> LocalText:
    """The cause's reasoning, rebuilt in both languages from its ``reason_key`` and ``params``."""
    key = str(cause.get("reason_key", ""))
    p: Mapping[str, Any] = cause.get("params") or {}
    host = str(p.get("host") or cause.get("host") or "?")
    layer = _layer_text(p.get("layer") or cause.get("layer"))
    lower = _layer_text(p.get("lower_layer"))
    onset = clock.iso(p.get("onset", ""))
    what = str(p.get("what", ""))
    if key == "CAUSE_LAYER_FIRST":
        n = p.get("explains", 0)
        return LocalText(
            f"The {layer.en} layer on {host} went bad first ({what}, from {onset}) and explains "
            f"{n} later signal(s) in higher layers.",
            f"{host} 的{layer.zh_cn}层最先出现异常（{what}，自 {onset} 起），"
            f"可以解释其后较高层级的 {n} 个信号。",
        )
    if key == "CAUSE_LAYER_ONLY":
        return LocalText(
            f"The {layer.en} layer on {host} went bad ({what}, from {onset}); no lower layer went bad "
            f"before it.",
            f"{host} 的{layer.zh_cn}层出现异常（{what}，自 {onset} 起）；在此之前没有更低层级出现异常。",
        )
    if key == "CAUSE_LAYER_SYMPTOM":
        lower_host = str(p.get("lower_host") or "?")
        return LocalText(
            f"The {layer.en} layer on {host} went bad at {onset}, after the {lower.en} layer on "
            f"{lower_host}: "
            "more likely a symptom than the cause.",
            f"{host} 的{layer.zh_cn}层于 {onset} 出现异常，"
            f"晚于 {lower_host} 的{lower.zh_cn}层：更可能是症状而非原因。",
        )
    if key == "CAUSE_CHANGE_BEFORE_ONSET":
        en_m, zh_m = _minutes(p.get("before_onset_s"))
        change = str(p.get("change", "change"))
        at = clock.iso(p.get("at", ""))
        return LocalText(
            f"{change} on {host} at {at}, {en_m} before the degradation began: deployment or mis-operation.",
            f"{host} 于 {at} 发生变更（{change}），在性能下降开始前 {zh_m}：可能是部署或误操作。",
        )
    if key in ("CAUSE_AGENT_SILENT", "CAUSE_AGENT_SILENT_ALONE", "CAUSE_AGENT_SILENT_AFTER_FAULT"):
        seen = clock.iso(p.get("last_seen", ""))
        if key == "CAUSE_AGENT_SILENT_AFTER_FAULT":
            return LocalText(
                f"The agent on {host} fell silent at {seen}, after the {lower.en} layer on the same host "
                "went bad: more likely a symptom.",
                f"{host} 上的代理于 {seen} 停止上报，此前同一主机的{lower.zh_cn}层已出现异常：更可能是症状。",
            )
        if key == "CAUSE_AGENT_SILENT":
            n, total = p.get("neighbours_reporting", 0), p.get("neighbours", 0)
            return LocalText(
                f"The agent on {host} stopped reporting at {seen} while {n} of {total} neighbour(s) kept "
                "reporting: the agent or its host is down.",
                f"{host} 上的代理于 {seen} 停止上报，"
                f"而 {total} 个相邻主机中有 {n} 个仍在上报：代理或主机宕机。",
            )
        return LocalText(
            f"The agent on {host} stopped reporting at {seen}; no neighbour to compare with: the agent, "
            "its host or its network is down.",
            f"{host} 上的代理于 {seen} 停止上报；没有可比较的相邻主机：代理、主机或其网络故障。",
        )
    if key == "CAUSE_SITE_OUTAGE":
        return LocalText(
            "Most of the customer's agents stopped reporting together: site or network outage.",
            "该客户的大多数代理同时停止上报：站点或网络中断。",
        )
    text = str(cause.get("reason") or key or "?")
    return LocalText(text, text)


def _labels(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(sorted((str(k), str(v)) for k, v in value))
    return ()


def _evidence_points(
    store: Store, customer: str, member: Mapping[str, Any], start: float, end: float
) -> tuple[str, list[tuple[float, float]]] | None:
    """(unit, points) of the member's series in [start, end] (raw points, else roll-up averages)."""
    metric = member.get("metric")
    host = member.get("host")
    if not metric or not host:
        return None
    return SeriesRepo(store).points(
        customer, str(host), str(metric), _labels(member.get("labels")), start, end
    )


def _host_count(store: Store, customer: str) -> int:
    return SeriesRepo(store).host_count(customer)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def build_fault_report(
    store: Store,
    case: CaseRecord,
    customer: Customer,
    signoff: SignOff,
    generated_at: float,
) -> FaultAnalysisReport:
    """The report model of ``case`` (times in ``customer.timezone``)."""
    clock = _Clock(load_zone(customer.timezone))
    at = clock.at
    members = sorted(case.members, key=lambda m: -(_float(m.get("score")) or 0.0))
    recoveries = [_float(m.get("recovered_ts")) for m in case.members]
    recovered_ts: float | None = None
    if recoveries and all(r is not None for r in recoveries):
        recovered_ts = max(r for r in recoveries if r is not None)
    recovered_event = next((e.ts for e in case.events if e.kind == "recovered"), None)
    if recovered_ts is None:
        recovered_ts = recovered_event or case.resolved_at
    end = recovered_ts if recovered_ts is not None and recovered_ts >= case.onset_at else None

    kind = case.kind or "DEGRADATION"  # a case a person opened has no incident kind
    en_kind, zh_kind = _KIND_TITLE.get(kind, (kind.title(), kind))
    hosts_text = ", ".join(case.hosts) or "-"
    title = LocalText(case.title or f"{en_kind}: {hosts_text}", f"{zh_kind}：{hosts_text}")

    causes = list(case.causes)
    top = causes[0] if causes else None
    if top is not None:
        cause = ProbableCause(
            label=cause_label(top),
            confidence=min(1.0, max(0.0, _float(top.get("confidence")) or 0.0)),
            reasoning=(cause_reason(top, clock),),
            layer=_layer(top.get("layer")),
            host=top.get("host"),
            alternatives=tuple(
                RejectedCause(
                    cause_label(c),
                    min(1.0, max(0.0, _float(c.get("confidence")) or 0.0)),
                    _why_not(c, top, clock),
                )
                for c in causes[1:5]
            ),
        )
    else:
        cause = ProbableCause(
            LocalText("Not determined", "未能确定"),
            0.0,
            (LocalText("No cause candidate was ranked for this case.", "该工单没有可排序的原因候选。"),),
        )

    n_hosts = len(case.hosts)
    total = _host_count(store, case.customer)
    duration = "" if end is None else f"{round((end - case.onset_at) / 60)}"
    summary = LocalText(
        f"{en_kind} on {n_hosts} host(s) ({hosts_text}) from {clock.text(case.onset_at)}"
        + (f" to {clock.text(end)} ({duration} min)" if end is not None else ", not yet recovered")
        + f". Probable cause: {cause.label.en} (confidence {_pct(cause.confidence)}). "
        f"Case {case.id} is {case.state}.",
        f"{clock.text(case.onset_at)}"
        + (f" 至 {clock.text(end)}（{duration} 分钟）" if end is not None else " 起（尚未恢复）")
        + f"，{n_hosts} 台主机（{hosts_text}）发生{zh_kind}。可能原因：{cause.label.zh_cn}"
        f"（置信度 {_pct(cause.confidence)}）。"
        f"工单 {case.id} 当前状态：{_STATE_ZH.get(case.state, case.state)}。",
    )
    impact = Impact(
        hosts=tuple(case.hosts),
        start=at(case.onset_at),
        end=None if end is None else at(end),
        description=LocalText(
            f"{n_hosts} of {total} host(s) affected; {len(case.members)} signal(s) deviated from their "
            f"baseline.",
            f"{total} 台主机中 {n_hosts} 台受影响；{len(case.members)} 个信号偏离基线。",
        ),
        hosts_total=total or None,
    )

    timeline = _timeline(case, clock, end)
    evidence: list[EvidenceChart] = []
    window_end = max(end or generated_at, case.onset_at + WINDOW_AFTER_MIN_S)
    for member in members:
        if len(evidence) == MAX_CHARTS:
            break
        found = _evidence_points(
            store, case.customer, member, case.onset_at - WINDOW_BEFORE_S, window_end + WINDOW_AFTER_MIN_S
        )
        if found is None or len(found[1]) < 2:
            continue
        unit_name, pts = found
        try:
            unit = Unit(unit_name)
        except ValueError:
            continue
        metric = str(member["metric"])
        onset_ts = _float(member.get("onset_ts")) or case.onset_at
        member_recovered = _float(member.get("recovered_ts"))
        evidence.append(
            EvidenceChart(
                LocalText(metric, metric),
                metric,
                unit,
                str(member["host"]),
                tuple((at(t), v) for t, v in pts),
                at(onset_ts),
                None if member_recovered is None else at(member_recovered),
                baseline=_float(member.get("baseline")),
            )
        )

    notes = [e for e in case.events if e.kind == "note"]
    actions = tuple(CaseNote(at(e.ts), e.actor or "-", e.text) for e in notes)
    return FaultAnalysisReport(
        customer=customer,
        case=CaseInfo(
            case_id=case.id,
            incident_id=case.incident_id or "",
            severity=_severity(case.severity),
            title=title,
            engineer=case.owner or signoff.prepared_by,
            opened_at=at(case.opened_at),
            closed_at=None if case.closed_at is None else at(case.closed_at),
        ),
        generated_at=at(generated_at),
        summary=summary,
        impact=impact,
        timeline=timeline,
        cause=cause,
        signoff=signoff,
        evidence=tuple(evidence),
        actions=actions,
        recommendations=_recommendations(causes),
        sessions=_sessions(store, case, clock),
    )


def _sessions(store: Store, case: CaseRecord, clock: _Clock) -> tuple[RemoteSession, ...]:
    """The case's remote sessions (the case was read in its scope: this is its customer's)."""
    return tuple(
        RemoteSession(
            c.record.id,
            c.record.engineer,
            c.record.host,
            c.record.mode,
            c.record.state,
            c.record.approved_by,
            None if c.started_at is None else clock.at(c.started_at),
            None if c.ended_at is None else clock.at(c.ended_at),
            c.recording,
        )
        for c in SessionRepo(store).for_case(Scope.everything(), case.id)
    )


_STATE_ZH = {state: zh for state, (_en, zh) in LABELS.items() if state in CASE_STATES}


def _severity(value: str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        return Severity.UNKNOWN


def _why_not(candidate: Mapping[str, Any], top: Mapping[str, Any], clock: _Clock) -> LocalText:
    reason = cause_reason(candidate, clock)
    c, t = _pct(_float(candidate.get("confidence")) or 0.0), _pct(_float(top.get("confidence")) or 0.0)
    return LocalText(
        f"Less likely ({c} against {t}): {reason.en}",
        f"可能性较低（{c}，对比 {t}）：{reason.zh_cn}",
    )


def _timeline(case: CaseRecord, clock: _Clock, recovered: float | None) -> tuple[TimelineEvent, ...]:
    at = clock.at
    first_host = case.hosts[0] if case.hosts else None
    events = [
        TimelineEvent(at(case.onset_at), TimelineKind.ONSET, None, first_host),
        TimelineEvent(at(case.detected_at), TimelineKind.DETECTED, None, first_host),
        TimelineEvent(at(case.opened_at), TimelineKind.CASE_OPENED),
    ]
    if case.acknowledged_at is not None:
        events.append(
            TimelineEvent(at(case.acknowledged_at), TimelineKind.ACKNOWLEDGED, None, None, case.owner)
        )
    for e in case.events:
        if e.kind == "note":
            text = e.text if e.text.strip() else "-"
            events.append(TimelineEvent(at(e.ts), TimelineKind.ACTION, LocalText(text, text), None, e.actor))
        elif e.kind == "resolved":
            events.append(
                TimelineEvent(
                    at(e.ts), TimelineKind.NOTE, LocalText("Case resolved", "工单已解决"), None, e.actor
                )
            )
        elif e.kind == "reopened":
            events.append(
                TimelineEvent(
                    at(e.ts), TimelineKind.NOTE, LocalText("Case reopened", "工单重新打开"), None, e.actor
                )
            )
    if recovered is not None:
        events.append(TimelineEvent(at(recovered), TimelineKind.RECOVERED))
    if case.closed_at is not None:
        closer = next((e.actor for e in reversed(case.events) if e.kind == "closed"), None)
        events.append(TimelineEvent(at(case.closed_at), TimelineKind.CLOSED, None, None, closer))
    return tuple(sorted(events, key=lambda e: e.at))


def _recommendations(causes: Sequence[Mapping[str, Any]]) -> tuple[Recommendation, ...]:
    out: list[Recommendation] = []
    seen: set[str] = set()
    for index, cause in enumerate(causes[:3]):
        kind = str(cause.get("kind", ""))
        layer = _layer(cause.get("layer"))
        if kind == "change":
            text = _CHANGE_RECOMMENDATION
        elif kind in ("agent_silent", "site_outage"):
            text = _SILENT_RECOMMENDATION
        elif layer is not None:
            text = _RECOMMENDATIONS[layer]
        else:
            continue
        if text.en in seen:
            continue
        seen.add(text.en)
        out.append(Recommendation(text, 1 if index == 0 else 2))
    out.append(
        Recommendation(
            LocalText(
                "Review this report with the customer and confirm the measures above are in place.",
                "与客户共同评审本报告，并确认上述措施已落实。",
            ),
            3,
        )
    )
    return tuple(out)


def fault_report_version(report: FaultAnalysisReport) -> str:
    """The version of a fault report: its whole model except when it was generated."""
    logo = report.customer.logo
    logo_bytes = logo if isinstance(logo, bytes) else str(logo).encode()
    unstamped = dataclasses.replace(
        report,
        generated_at=datetime.fromtimestamp(0, UTC),
        customer=dataclasses.replace(report.customer, logo=None),
    )
    return digest("fault", repr(unstamped), logo_bytes)


def stored_fault_report(
    runner: Runner,
    scope: Scope,
    case_id: str,
    lang: Lang,
    fmt: Format,
    *,
    again: bool = False,
    patient: bool = True,
) -> tuple[ReportRecord, bytes]:
    """The case's stored report in ``lang``/``fmt`` if one of the current version exists,
    else a new one, rendered now (once, however many ask at the same time: see
    :mod:`collector.reports.on_demand`) and stored (``again``: a new one in any case, e.g.
    once fonts are installed). NotFound outside the scope."""
    store = runner.store
    case = CaseRepo(store).get(scope, case_id)
    repo: InspectionRepo = runner.repo
    reports = runner.reports
    profile = repo.profile(Scope.everything(), case.customer)
    settings = runner.settings
    report = build_fault_report(
        store,
        case,
        Customer(profile.name, profile.timezone, profile.logo),
        SignOff(case.owner or settings.prepared_by, organisation=settings.organisation),
        time.time(),
    )
    version = fault_report_version(report)
    owner = Scope.of(case.customer)

    def existing() -> ReportRecord | None:
        found = reports.reports(
            owner, kind="fault", subject=case.id, lang=lang, fmt=fmt, version=version, limit=1
        )
        return found[0] if found else None

    def produce() -> ReportRecord:
        record = None if again else existing()  # stored by a render that finished just before
        if record is not None:
            return record
        content = render_fault_analysis(report, fmt, lang)
        name = f"fault-{case.id}.{lang}.{fmt}"
        path = write_report_file(settings.reports_dir, case.customer, name, content)
        return reports.add_report(
            case.customer, "fault", case.id, lang, fmt, content, path=path, version=version
        )

    record = (None if again else existing()) or renders.run(
        ("fault", case.id, lang, fmt, version + ("+again" if again else "")), produce, patient=patient
    )
    return reports.report_content(owner, record.id)
