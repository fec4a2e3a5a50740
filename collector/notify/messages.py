"""E-mail wording in English and Simplified Chinese, kept apart from the code that sends it.

Chinese terms follow the service catalogue (ARCHITECTURE.md): emergency maintenance is
应急维护 (应急性维护), an emergency case is 紧急事件. Every language has every key; a test
checks it.

>>> render_subject(MESSAGES["zh-CN"], "opened", "严重", "C-7", "数据库响应变慢", "acme")
'【应急维护】紧急事件已创建 [严重] C-7：数据库响应变慢（acme）'
>>> render_subject(MESSAGES["en"], "resolved", "Critical", "C-7", "DB slow", "acme")
'[Emergency maintenance] Case resolved [Critical] C-7: DB slow (acme)'
"""

# Full-width Chinese punctuation is intended in the zh-CN wording and its doctest.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

from typing import Final

from collector.notify.event import EventKind

__all__ = ["MESSAGES", "Messages", "render_subject"]

Messages = dict[str, str]
"""Message key → text with ``str.format`` fields."""

MESSAGES: Final[dict[str, Messages]] = {
    "en": {
        "subject": "[Emergency maintenance] Case {event} [{severity}] {case_id}: {title} ({customer})",
        "event.opened": "opened",
        "event.acknowledged": "acknowledged",
        "event.resolved": "resolved",
        "event.reopened": "reopened",
        "event.sla_breach": "breached its SLA",
        "event.survey": "resolved: how did we do?",
        "intro.opened": (
            "remote-diag detected a sharp degradation on your system and opened an emergency "
            "maintenance case. Our engineers have been alerted and are investigating."
        ),
        "intro.acknowledged": "An engineer has taken charge of this emergency case and is working on it.",
        "intro.resolved": (
            "This emergency case has been resolved. A fault-analysis report will follow; "
            "please tell us if you still see a problem."
        ),
        "intro.reopened": (
            "The problem came back, so this emergency case has been reopened. Our engineers are "
            "investigating again."
        ),
        "intro.sla_breach": (
            "This case has passed one of its service-level targets (business time, per your "
            "contract). It has been escalated to the service manager."
        ),
        "intro.survey": "This case has been resolved. Please tell us how satisfied you are with our service.",
        "severity.CRIT": "Critical",
        "severity.WARN": "Warning",
        "severity.UNKNOWN": "Unknown",
        "severity.OK": "OK",
        "field.case": "Case",
        "field.customer": "Customer",
        "field.severity": "Severity",
        "field.hosts": "Hosts",
        "field.cause": "Probable cause",
        "field.opened_at": "Opened at",
        "field.event_at": "Updated at",
        "field.actor": "By",
        "field.note": "Note",
        "cause.unknown": "under analysis",
        "link": "View the case",
        "footer": "This message was sent automatically by remote-diag. Please do not reply to it.",
    },
    "zh-CN": {
        "subject": "【应急维护】紧急事件{event} [{severity}] {case_id}：{title}（{customer}）",
        "event.opened": "已创建",
        "event.acknowledged": "已受理",
        "event.resolved": "已解决",
        "event.reopened": "已重新打开",
        "event.sla_breach": "已超出服务时限",
        "event.survey": "已解决，请评价我们的服务",
        "intro.opened": (
            "远程诊断系统检测到您的系统性能急剧下降，已创建应急维护紧急事件。"
            "我们的工程师已收到告警，正在排查。"
        ),
        "intro.acknowledged": "工程师已受理此紧急事件，正在处理。",
        "intro.resolved": "此紧急事件已解决，事故分析报告将随后提供。如仍发现问题，请及时告知我们。",
        "intro.reopened": "问题再次出现，此紧急事件已重新打开，我们的工程师正在重新排查。",
        "intro.sla_breach": "此事件已超出合同约定的服务时限（按工作时间计算），已升级至服务经理。",
        "intro.survey": "此事件已解决，请您对我们的服务进行满意度评价。",
        "severity.CRIT": "严重",
        "severity.WARN": "警告",
        "severity.UNKNOWN": "未知",
        "severity.OK": "正常",
        "field.case": "事件编号",
        "field.customer": "客户",
        "field.severity": "严重程度",
        "field.hosts": "涉及主机",
        "field.cause": "可能原因",
        "field.opened_at": "发生时间",
        "field.event_at": "更新时间",
        "field.actor": "处理人",
        "field.note": "备注",
        "cause.unknown": "正在分析",
        "link": "查看紧急事件",
        "footer": "此邮件由远程诊断系统自动发送，请勿直接回复。",
    },
}
"""Wording by language (``en``, ``zh-CN``)."""


def render_subject(
    messages: Messages, event: EventKind, severity: str, case_id: str, title: str, customer: str
) -> str:
    """The subject line in ``messages``' language (severity already translated)."""
    return messages["subject"].format(
        event=messages[f"event.{event}"], severity=severity, case_id=case_id, title=title, customer=customer
    )
