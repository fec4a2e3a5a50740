# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""The fault-analysis report goes to the customer by itself when an emergency case is resolved.

When a case of type ``emergency`` becomes ``resolved`` (through the API or the desk), the
case's fault-analysis report (事故分析报告) is rendered as it is then, in English and in
Simplified Chinese, stored as service records (so the mail and ``/api/v1/records`` hold
the same bytes), and queued in the notification outbox as the kind ``fault_report``: an
e-mail with both HTML reports attached, in the customer's mail language, to the customer's
e-mail destination when its ``events`` list ``fault_report`` (a webhook listing it gets the
record ids and hashes, never the report). Retries, backoff, leases and dedup are the
outbox's; a resolve of the same report version queues nothing new.

The recipients are the customer's notification e-mail destination (``collector.yaml``);
the SLA branch's named contacts are not wired in yet.

Threat model: the report is the customer's own (the case's customer, rendered with the
reports' data-only URL fetcher); nothing the resolving person typed reaches the mail's
headers but the case id; the attachment names are built from the case id and language.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from collector.notify.config import CustomerNotifyConfig, EmailTarget
from collector.notify.kinds import NoticeKind, register
from collector.store import DatabaseError
from collector.store.queries import Scope

if TYPE_CHECKING:
    from collector.inspections.runner import Runner
    from collector.notify import Notifier
    from collector.store.cases import CaseRecord

__all__ = ["EVENT", "FAULT_REPORT", "FaultReportNotice", "send_fault_report"]

log = logging.getLogger(__name__)

EVENT: Final = "fault_report"


class Attachment(BaseModel):
    model_config = ConfigDict(frozen=True)

    record_id: int
    lang: str
    filename: str
    sha256: str
    content_b64: str


class FaultReportNotice(BaseModel):
    """One resolved emergency case's fault-analysis report, as the outbox stores it."""

    model_config = ConfigDict(frozen=True)

    customer: str
    case_id: str
    title: str
    resolved_at: float
    reports: tuple[Attachment, ...]


_SUBJECT = {
    "en": "[remote-diag] Fault analysis report: {case} {title}",
    "zh-CN": "[remote-diag] 事故分析报告：{case} {title}",
}
_BODY = {
    "en": (
        "The emergency case {case} ({title}) was resolved.\n\n"
        "Attached is its fault-analysis report in English and in Chinese: the timeline, the impact, "
        "the evidence, the probable cause and the recommendations.\n\n"
        "Service records {ids}; SHA-256 of the attachments: {hashes}.\n"
    ),
    "zh-CN": (
        "应急事项 {case}（{title}）已解决。\n\n"
        "附件为该事项的事故分析报告（中文与英文），包括时间线、影响、证据、可能原因与建议。\n\n"
        "服务记录 {ids}；附件的 SHA-256：{hashes}。\n"
    ),
}


def _identity(n: FaultReportNotice) -> str:
    return "\x1f".join((n.customer, n.case_id, *(a.sha256 for a in n.reports)))


def _render_email(
    n: FaultReportNotice, cfg: CustomerNotifyConfig, target: EmailTarget, nid: str
) -> EmailMessage:
    lang = cfg.language
    title = " ".join(n.title.split())[:200]
    msg = EmailMessage()
    msg["Subject"] = _SUBJECT[lang].format(case=n.case_id, title=title)
    msg["From"] = target.from_
    msg["To"] = ", ".join(target.to)
    msg["Date"] = format_datetime(datetime.fromtimestamp(n.resolved_at, ZoneInfo(cfg.timezone)))
    msg["Message-ID"] = f"<{nid}@remote-diag.invalid>"
    thread = hashlib.sha256(f"{n.customer}\x1f{n.case_id}".encode()).hexdigest()[:32]
    msg["References"] = f"<case-{thread}@remote-diag.invalid>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Diag-Case"] = n.case_id
    msg["X-Diag-Event"] = "record.fault_report"
    msg.set_content(
        _BODY[lang].format(
            case=n.case_id,
            title=title,
            ids=", ".join(str(a.record_id) for a in n.reports),
            hashes=", ".join(a.sha256 for a in n.reports),
        )
    )
    for a in sorted(n.reports, key=lambda a: a.lang != lang):  # the customer's language first
        html = base64.b64decode(a.content_b64).decode("utf-8")
        msg.add_attachment(html, subtype="html", charset="utf-8", cte="base64", filename=a.filename)
    msg["Content-Language"] = lang
    return msg


def _webhook_payload(n: FaultReportNotice, nid: str) -> dict[str, Any]:
    return {
        "id": nid,
        "event": "record.fault_report",
        "customer": n.customer,
        "case_id": n.case_id,
        "records": [{"id": a.record_id, "lang": a.lang, "sha256": a.sha256} for a in n.reports],
    }


FAULT_REPORT: Final = register(
    NoticeKind(
        name="fault_report",
        model=FaultReportNotice,
        event=lambda n: EVENT,
        customer=lambda n: str(n.customer),
        subject=lambda n: str(n.case_id),
        identity=_identity,
        webhook_event=lambda n: "record.fault_report",
        webhook_payload=_webhook_payload,
        render_email=_render_email,
    )
)


def send_fault_report(runner: Runner, notifier: Notifier, case: CaseRecord) -> list[str]:
    """Queue ``case``'s fault-analysis report (emergency cases only); the ids newly queued.

    Never raises: a report that cannot be rendered or queued is logged and left for an
    engineer to send by hand (``diagctl reports fault``)."""
    if case.type != "emergency" or case.state != "resolved":
        return []
    from collector.reports import ReportError
    from collector.reports.fault import stored_fault_report

    attachments = []
    try:
        for lang in ("en", "zh-CN"):
            record, content = stored_fault_report(runner, Scope.of(case.customer), case.id, lang, "html")
            attachments.append(
                Attachment(
                    record_id=record.id,
                    lang=lang,
                    filename=f"fault-{case.id}.{lang}.html",
                    sha256=record.sha256,
                    content_b64=base64.b64encode(content).decode("ascii"),
                )
            )
        return notifier.notify(
            FaultReportNotice(
                customer=case.customer,
                case_id=case.id,
                title=case.title,
                resolved_at=case.resolved_at or case.updated_at,
                reports=tuple(attachments),
            )
        )
    except (ReportError, DatabaseError) as exc:
        log.error("the fault-analysis report of case %s was not queued: %s", case.id, type(exc).__name__)
        return []
