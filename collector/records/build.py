# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""Build service records from the case and the store (never typed twice).

- **emergency** (应急服务报告) and **repair** (维修服务报告, routine/adaptive work): one
  case: the request, the people (first responder, assignee), response and resolution
  times, the timeline, the work logged, the probable cause, the product decision and the
  release that delivered it;
- **routine** (日常运行维护报告): a customer's period (a month or a quarter): the cases
  opened and resolved, the inspections run and their scores, the version changes, the
  time logged;
- **upgrade** (产品升级记录): the product version changes the customer's agents reported
  in a period, each linked to the case that delivered it when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from collector.records.model import EMPTY, Fact, Section, ServiceRecord, Table
from collector.reports.fault import cause_label
from collector.reports.model import Customer, LocalText, SignOff
from collector.schedule.cron import load_zone
from collector.store.case_records import CaseRecord
from collector.store.case_states import LABELS
from collector.store.desk_cases import TimeLog
from collector.store.inspections import RunRecord
from collector.store.queries import UpgradeInfo
from collector.store.sessions import CaseSession

__all__ = [
    "REPAIR_TYPES",
    "Period",
    "case_record",
    "parse_period",
    "routine_record",
    "upgrade_record",
]

REPAIR_TYPES = ("routine", "adaptive", "perfective", "onsite")
"""Case types a repair service report is made for (the emergency report: ``emergency``)."""

_PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")


@dataclass(frozen=True, slots=True)
class Period:
    """A month (``2026-11``) or a quarter (``2026-Q4``) in the customer's time zone."""

    name: str
    start: float
    end: float
    """Exclusive."""
    timezone: str = "UTC"

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        year, month, quarter = _parts(self.name)
        if quarter is not None:
            q = quarter - 1 or 4
            return parse_period(f"{year - (quarter == 1)}-Q{q}", self.timezone)
        assert month is not None
        m = month - 1 or 12
        return parse_period(f"{year - (month == 1)}-{m:02d}", self.timezone)

    def days(self) -> tuple[date, date]:
        """The first day and the day after the last, in the period's time zone."""
        zone = load_zone(self.timezone)
        return (
            datetime.fromtimestamp(self.start, zone).date(),
            datetime.fromtimestamp(self.end, zone).date(),
        )


def _parts(name: str) -> tuple[int, int | None, int | None]:
    match = _PERIOD.match(name)
    if match is None:
        raise ValueError(f"period must be a month (2026-11) or a quarter (2026-Q4), got {name!r}")
    year, month, quarter = match.groups()
    return int(year), None if month is None else int(month), None if quarter is None else int(quarter)


def parse_period(name: str, timezone: str) -> Period:
    """``2026-11`` or ``2026-Q4`` as a span of time in ``timezone``; ValueError otherwise."""
    year, month, quarter = _parts(name)
    first = month if month is not None else 3 * ((quarter or 1) - 1) + 1
    months = 1 if month is not None else 3
    last = first + months
    zone = load_zone(timezone)
    start = datetime(year, first, 1, tzinfo=zone)
    end = datetime(year + (last > 12), (last - 1) % 12 + 1, 1, tzinfo=zone)
    return Period(name, start.timestamp(), end.timestamp(), timezone)


def _label(value: str | None) -> LocalText:
    if not value:
        return LocalText("—", "—")
    en, zh = LABELS.get(value, _EVENTS.get(value, (value, value)))
    return LocalText(en, zh)


_EVENTS = {
    "opened": ("opened", "创建"),
    "started": ("work started", "开始处理"),
    "waiting": ("waiting on customer", "等待客户"),
    "resumed": ("resumed", "恢复处理"),
    "reopened": ("reopened", "重新打开"),
    "note": ("note", "备注"),
    "transferred": ("transferred", "转派"),
    "time": ("time logged", "登记工时"),
    "decision": ("product decision", "产品决定"),
    "release": ("release", "发布版本"),
    "notified": ("notified", "已通知"),
    "updated": ("evidence updated", "证据更新"),
    "complaint": ("complaint step", "投诉处理"),
    "onsite": ("on-site", "现场"),
    "remote": ("remote", "远程"),
    "accepted": ("accepted", "接受"),
    "rejected": ("rejected", "拒绝"),
    "deferred": ("deferred", "延期"),
}


class _Clock:
    def __init__(self, timezone: str) -> None:
        self.zone = load_zone(timezone)

    def text(self, ts: float | None) -> str:
        if ts is None:
            return "—"
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float | None) -> LocalText:
    if seconds is None:
        return LocalText("—", "—")
    minutes = round(seconds / 60)
    hours, rest = divmod(minutes, 60)
    if hours:
        return LocalText(f"{hours} h {rest} min", f"{hours} 小时 {rest} 分钟")
    return LocalText(f"{minutes} min", f"{minutes} 分钟")


def _hours(minutes: int) -> str:
    return f"{minutes / 60:.1f}"


L = LocalText

_COL_TIME = L("Time", "时间")
_COL_ENGINEER = L("Engineer", "工程师")


def _time_section(log: TimeLog) -> Section:
    rows = tuple(
        (e.work_date.isoformat(), e.engineer, _label(e.mode), str(e.minutes), e.activity) for e in log.entries
    )
    return Section(
        L("Work performed", "服务工作记录"),
        facts=(
            Fact(L("Total time (hours)", "总工时（小时）"), _hours(log.total_minutes)),
            Fact(L("On site (hours)", "现场（小时）"), _hours(log.onsite_minutes)),
            Fact(L("Remote (hours)", "远程（小时）"), _hours(log.remote_minutes)),
        ),
        table=Table(
            (
                L("Date", "日期"),
                _COL_ENGINEER,
                L("Mode", "方式"),
                L("Minutes", "分钟"),
                L("Activity", "工作内容"),
            ),
            rows,
            L("No time was logged on this case.", "本事项未登记工时。"),
        ),
    )


def _sessions_section(sessions: Sequence[CaseSession], clock: _Clock) -> Section:
    """The customer-approved remote sessions of the case: who, where, approved by whom, when."""
    rows = tuple(
        (
            s.record.id,
            s.record.engineer,
            s.record.host,
            _label(s.record.mode),
            s.record.approved_by or "—",
            clock.text(s.started_at),
            clock.text(s.ended_at),
            L("yes", "有") if s.recording else L("no", "无"),
        )
        for s in sessions
    )
    return Section(
        L("Remote sessions", "远程会话"),
        table=Table(
            (
                L("Session", "会话"),
                _COL_ENGINEER,
                L("Host", "主机"),
                L("Mode", "方式"),
                L("Approved by", "批准人"),
                L("Started", "开始"),
                L("Ended", "结束"),
                L("Recording", "录像"),
            ),
            rows,
            L("No remote session was opened for this case.", "本事项未开启远程会话。"),
        ),
    )


def case_record(
    kind: str,
    case: CaseRecord,
    log: TimeLog,
    customer: Customer,
    signoff: SignOff,
    now: float,
    sessions: Sequence[CaseSession] = (),
) -> ServiceRecord:
    """The emergency or repair service report of ``case``; ValueError when the case's type
    does not match the kind (an emergency report is for emergency cases)."""
    if kind == "emergency" and case.type != "emergency":
        raise ValueError(
            f"case {case.id} is a {case.type} case; an emergency service report needs an emergency case"
        )
    if kind == "repair" and case.type not in REPAIR_TYPES:
        raise ValueError(
            f"case {case.id} is a {case.type} case; "
            f"a repair service report is for {', '.join(REPAIR_TYPES)} cases"
        )
    clock = _Clock(customer.timezone)
    kind_label = _label(case.type)
    if case.subtype:
        kind_label = L(
            f"{kind_label.en} ({_label(case.subtype).en})",
            f"{kind_label.zh_cn}（{_label(case.subtype).zh_cn}）",
        )
    response = None if case.acknowledged_at is None else case.acknowledged_at - case.opened_at
    resolution = None if case.resolved_at is None else case.resolved_at - case.opened_at
    facts = (
        Fact(L("Case", "服务单号"), case.id),
        Fact(L("Title", "标题"), case.title),
        Fact(L("Type", "类型"), kind_label),
        Fact(L("Channel", "受理渠道"), _label(case.channel)),
        Fact(L("Customer contact", "客户联系人"), case.contact or "—"),
        Fact(L("First responder", "首问负责人"), case.first_responder or "—"),
        Fact(L("Engineer", "处理工程师"), case.owner or "—"),
        Fact(L("Hosts", "涉及主机"), ", ".join(case.hosts) or "—"),
        Fact(L("State", "状态"), _label(case.state)),
    )
    times = Section(
        L("Response and resolution", "响应与解决"),
        facts=(
            Fact(L("Opened", "受理时间"), clock.text(case.opened_at)),
            Fact(L("Acknowledged", "响应时间"), clock.text(case.acknowledged_at)),
            Fact(L("Resolved", "解决时间"), clock.text(case.resolved_at)),
            Fact(L("Closed", "关闭时间"), clock.text(case.closed_at)),
            Fact(L("Time to respond", "响应用时"), _duration(response)),
            Fact(L("Time to resolve", "解决用时"), _duration(resolution)),
        ),
    )
    sections: list[Section] = [
        Section(
            L("The request", "服务请求"),
            text=(L(case.description, case.description),) if case.description else (),
            facts=(Fact(L("As reported", "问题描述"), case.title),),
        ),
        times,
    ]
    if case.causes:
        top = case.causes[0]
        sections.append(
            Section(
                L("Probable cause", "可能原因"),
                facts=(
                    Fact(L("Cause", "原因"), cause_label(top)),
                    Fact(L("Host", "主机"), str(top.get("host") or "—")),
                    Fact(L("Confidence", "置信度"), f"{round(float(top.get('confidence', 0)) * 100)}%"),
                ),
            )
        )
    sections.append(
        Section(
            L("Timeline", "处理过程"),
            table=Table(
                (_COL_TIME, L("Event", "事件"), L("By", "人员"), L("Details", "说明")),
                tuple((clock.text(e.ts), _label(e.kind), e.actor or "—", e.text) for e in case.events),
            ),
        )
    )
    sections.append(_time_section(log))
    sections.append(_sessions_section(sessions, clock))
    if case.decision or case.release or case.upgrade_id:
        sections.append(
            Section(
                L("Product decision and release", "产品决定与发布"),
                facts=(
                    Fact(L("Decision", "决定"), _label(case.decision)),
                    Fact(L("Reason", "理由"), case.decision_text or "—"),
                    Fact(L("Release", "发布版本"), case.release or "—"),
                    Fact(L("Upgrade record", "升级记录"), str(case.upgrade_id) if case.upgrade_id else "—"),
                ),
            )
        )
    summary = L(
        f"Case {case.id} ({kind_label.en}) was opened on {clock.text(case.opened_at)}"
        + (
            f" and resolved on {clock.text(case.resolved_at)}"
            if case.resolved_at
            else ", and is not resolved yet"
        )
        + f"; {_hours(log.total_minutes)} hours of work were logged.",
        f"服务单 {case.id}（{kind_label.zh_cn}）于 {clock.text(case.opened_at)} 受理，"
        + (f"于 {clock.text(case.resolved_at)} 解决" if case.resolved_at else "尚未解决")
        + f"；共登记工时 {_hours(log.total_minutes)} 小时。",
    )
    return ServiceRecord(
        kind=kind,
        subject=case.id,
        customer=customer,
        signoff=SignOff(case.owner or signoff.prepared_by, organisation=signoff.organisation),
        generated_at=datetime.fromtimestamp(now, UTC),
        facts=facts,
        sections=tuple(sections),
        summary=summary,
        extra={
            "case": case.id,
            "type": case.type,
            "state": case.state,
            "response_s": response,
            "resolution_s": resolution,
            "minutes": {
                "total": log.total_minutes,
                "onsite": log.onsite_minutes,
                "remote": log.remote_minutes,
            },
        },
    )


def _period_facts(customer: Customer, period: Period) -> tuple[Fact, ...]:
    clock = _Clock(customer.timezone)
    return (
        Fact(L("Customer", "客户"), customer.name),
        Fact(L("Period", "周期"), f"{period.name} ({clock.text(period.start)} – {clock.text(period.end)})"),
    )


def _upgrade_rows(
    upgrades: Sequence[UpgradeInfo], linked: dict[int, str], clock: _Clock
) -> tuple[tuple[str | LocalText, ...], ...]:
    return tuple(
        (
            clock.text(u.ts),
            u.host,
            u.product,
            u.from_version or "—",
            u.to_version or L("(removed)", "（已卸载）"),
            linked.get(u.row_id, "—"),
        )
        for u in sorted(upgrades, key=lambda u: (u.ts, u.row_id))
    )


_UPGRADE_COLUMNS = (
    _COL_TIME,
    L("Host", "主机"),
    L("Product", "产品"),
    L("From version", "原版本"),
    L("To version", "新版本"),
    L("Case", "服务单"),
)


def upgrade_record(
    customer: Customer,
    signoff: SignOff,
    subject: str,
    period: Period | None,
    upgrades: Sequence[UpgradeInfo],
    linked: dict[int, str],
    now: float,
) -> ServiceRecord:
    """The product upgrade record: ``upgrades`` (already chosen: a period's, or a case's),
    ``linked``: upgrade row id -> the case that delivered it."""
    clock = _Clock(customer.timezone)
    rows = _upgrade_rows(upgrades, linked, clock)
    facts = _period_facts(customer, period) if period is not None else (Fact(L("Case", "服务单"), subject),)
    hosts = sorted({u.host for u in upgrades})
    return ServiceRecord(
        kind="upgrade",
        subject=subject,
        customer=customer,
        signoff=signoff,
        generated_at=datetime.fromtimestamp(now, UTC),
        facts=facts,
        sections=(
            Section(
                L("Version changes", "版本变更"),
                text=(
                    L(
                        "Versions as the agents on the hosts reported them before and after the change.",
                        "版本信息来自各主机代理上报的变更前后版本。",
                    ),
                ),
                table=Table(
                    _UPGRADE_COLUMNS, rows, L("No version changes were reported.", "未上报版本变更。")
                ),
            ),
        ),
        summary=L(
            f"{len(rows)} version changes on {len(hosts)} hosts; "
            f"{sum(1 for u in upgrades if u.row_id in linked)} "
            "delivered through a case.",
            f"共 {len(hosts)} 台主机发生 {len(rows)} 次版本变更，其中 "
            f"{sum(1 for u in upgrades if u.row_id in linked)} 次通过服务单交付。",
        ),
        extra={"changes": len(rows), "hosts": len(hosts)},
    )


def routine_record(
    customer: Customer,
    signoff: SignOff,
    period: Period,
    cases: Sequence[CaseRecord],
    logs: dict[str, TimeLog],
    runs: Sequence[RunRecord],
    upgrades: Sequence[UpgradeInfo],
    linked: dict[int, str],
    now: float,
) -> ServiceRecord:
    """The routine operations report of ``period``: what the service did, day by day."""
    clock = _Clock(customer.timezone)
    opened = [c for c in cases if period.start <= c.opened_at < period.end]
    resolved = [c for c in cases if c.resolved_at is not None and period.start <= c.resolved_at < period.end]
    minutes_by_case = {
        cid: sum(e.minutes for e in log.entries if _in(e.work_date, period, clock))
        for cid, log in logs.items()
    }
    total = sum(minutes_by_case.values())
    by_type: dict[str, int] = {}
    for c in opened:
        by_type[c.type] = by_type.get(c.type, 0) + 1
    case_rows = tuple(
        (
            c.id,
            _label(c.type),
            c.title,
            clock.text(c.opened_at),
            clock.text(c.resolved_at),
            _label(c.state),
            _hours(minutes_by_case.get(c.id, 0)),
        )
        for c in sorted(cases, key=lambda c: c.opened_at)
    )
    run_rows = tuple(
        (
            clock.text(r.finished_at or r.created_at),
            r.plan,
            f"{r.hosts_answered or 0}/{r.hosts_selected or 0}",
            "—" if r.overall_score is None else str(r.overall_score),
            str(r.counts.get("CRIT", 0)),
            str(r.counts.get("WARN", 0)),
        )
        for r in sorted(runs, key=lambda r: r.created_at)
    )
    sections = (
        Section(
            L("Service cases", "服务事项"),
            facts=(
                Fact(L("Opened", "新受理"), str(len(opened))),
                Fact(L("Resolved", "已解决"), str(len(resolved))),
                Fact(L("Time logged (hours)", "登记工时（小时）"), _hours(total)),
                *tuple(Fact(_label(t), str(n)) for t, n in sorted(by_type.items())),
            ),
            table=Table(
                (
                    L("Case", "服务单"),
                    L("Type", "类型"),
                    L("Title", "标题"),
                    L("Opened", "受理"),
                    L("Resolved", "解决"),
                    L("State", "状态"),
                    L("Hours", "工时"),
                ),
                case_rows,
            ),
        ),
        Section(
            L("Inspections", "巡检"),
            table=Table(
                (
                    _COL_TIME,
                    L("Plan", "巡检计划"),
                    L("Hosts answered", "应答主机"),
                    L("Score", "评分"),
                    L("Critical", "严重"),
                    L("Warnings", "警告"),
                ),
                run_rows,
            ),
        ),
        Section(
            L("Version changes", "版本变更"),
            table=Table(_UPGRADE_COLUMNS, _upgrade_rows(upgrades, linked, clock), EMPTY),
        ),
    )
    return ServiceRecord(
        kind="routine",
        subject=period.name,
        customer=customer,
        signoff=signoff,
        generated_at=datetime.fromtimestamp(now, UTC),
        facts=_period_facts(customer, period),
        sections=sections,
        summary=L(
            f"In {period.name}: {len(opened)} cases opened, {len(resolved)} resolved, "
            f"{len(runs)} inspections, "
            f"{len(upgrades)} version changes, {_hours(total)} hours of work logged.",
            f"{period.name} 期间：新受理 {len(opened)} 个服务事项，解决 {len(resolved)} 个，"
            f"巡检 {len(runs)} 次，"
            f"版本变更 {len(upgrades)} 次，登记工时 {_hours(total)} 小时。",
        ),
        extra={
            "opened": len(opened),
            "resolved": len(resolved),
            "inspections": len(runs),
            "version_changes": len(upgrades),
            "minutes": total,
        },
    )


def _in(day: date, period: Period, clock: _Clock) -> bool:
    start = datetime.fromtimestamp(period.start, clock.zone).date()
    end = datetime.fromtimestamp(period.end, clock.zone).date()
    return start <= day < end
