"""The ``survey`` notification: a case's one-time satisfaction survey link, e-mailed to the
case's contact (issue 14, follow-up).

The e-mail goes to the contact the notice names (``email_to``), through the customer's
configured SMTP server and sender, and only if the customer's ``email.events`` include
``survey`` (they do by default). Webhooks whose ``events`` include ``survey`` are told that
a survey was sent, without the link or the contact's address: the link is a credential
for the contact alone.

Threat model: the link (and so the token) is in the outbox row until the e-mail is sent
(the outbox row is deleted on delivery); the store keeps only the token's hash otherwise.
Anyone who can read the store while the row waits could answer that survey once: the
same trust the store's readers already have over the case itself.

>>> n = SurveyNotice(customer="acme", case_id="C-acme-1", case_title="slow", survey_id=7,
...                  contact="wang@acme.example", language="zh-CN",
...                  link="https://diag.example.com/survey/abc", expires_at=1_700_000_000.0,
...                  sent_at=1_699_000_000.0)
>>> SURVEY.event(n), SURVEY.webhook_event(n), SURVEY.email_to(n) if SURVEY.email_to else None
('survey', 'case.survey', ('wang@acme.example',))
>>> "abc" in str(SURVEY.webhook_payload(n, "id1")), "wang" in str(SURVEY.webhook_payload(n, "id1"))
(False, False)
"""

# Full-width Chinese punctuation is intended in the zh-CN wording.
# ruff: noqa: RUF001

from __future__ import annotations

import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from collector.notify.config import CustomerNotifyConfig, EmailTarget
from collector.notify.event import PAYLOAD_VERSION, iso_utc
from collector.notify.kinds import NoticeKind, register

__all__ = ["SURVEY", "SurveyNotice", "render_survey_email"]

_MSGID_DOMAIN = "remote-diag.invalid"

_WORDS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "subject": "[Service follow-up] Case {case_id} resolved: how did we do? ({title})",
        "intro": "Your case {case_id} ({title}) has been resolved. Please tell us how satisfied you are "
        "with our service: it takes a minute.",
        "link": "Answer the survey",
        "expires": "The link can be used once and expires on {expires}.",
        "footer": "This message was sent automatically by remote-diag. Please do not forward it: "
        "the link is for you alone.",
    },
    "zh-CN": {
        "subject": "【服务回访】事件 {case_id} 已解决，请评价我们的服务（{title}）",
        "intro": "您的事件 {case_id}（{title}）已解决。请您花一分钟对我们的服务进行满意度评价。",
        "link": "填写服务质量评价表",
        "expires": "该链接仅可使用一次，将于 {expires} 失效。",
        "footer": "此邮件由远程诊断系统自动发送。请勿转发：该链接仅供您本人使用。",
    },
}


class SurveyNotice(BaseModel):
    """A survey link to send to one contact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer: str = Field(max_length=63)
    case_id: str = Field(max_length=80)
    case_title: str = Field(max_length=500)
    survey_id: int
    contact: str = Field(max_length=320)
    language: Literal["en", "zh-CN"]
    link: str = Field(max_length=2000)
    expires_at: float
    sent_at: float


def _payload(n: SurveyNotice, nid: str) -> dict[str, Any]:
    return {
        "version": PAYLOAD_VERSION,
        "id": nid,
        "event": "case.survey",
        "event_at": iso_utc(n.sent_at),
        "case": {"id": n.case_id, "customer": n.customer, "title": n.case_title},
        "survey": {"id": n.survey_id, "expires_at": iso_utc(n.expires_at), "language": n.language},
    }


def render_survey_email(
    n: SurveyNotice, cfg: CustomerNotifyConfig, target: EmailTarget, nid: str
) -> EmailMessage:
    """The survey e-mail in the contact's language, to ``target.to`` (the contact)."""
    w = _WORDS[n.language]
    tz = ZoneInfo(cfg.timezone)
    expires = datetime.fromtimestamp(n.expires_at, tz).strftime("%Y-%m-%d %H:%M %Z")
    fields = {"case_id": n.case_id, "title": n.case_title, "expires": expires}
    msg = EmailMessage()
    msg["Subject"] = w["subject"].format(**fields)
    msg["From"] = target.from_
    msg["To"] = ", ".join(target.to)
    msg["Date"] = format_datetime(datetime.fromtimestamp(n.sent_at, tz))
    msg["Message-ID"] = f"<{nid}@{_MSGID_DOMAIN}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Diag-Case"] = n.case_id
    msg["X-Diag-Event"] = "case.survey"
    text = [w["intro"].format(**fields), "", f"{w['link']}: {n.link}", "", w["expires"].format(**fields)]
    msg.set_content("\n".join([*text, "", "-- ", w["footer"], ""]))
    e = html.escape
    msg.add_alternative(
        f'<!DOCTYPE html><html lang="{n.language}"><head><meta charset="utf-8"><title>{e(msg["Subject"])}'
        f'</title></head><body style="font-family:sans-serif"><p>{e(w["intro"].format(**fields))}</p>'
        f'<p><a href="{e(n.link, quote=True)}">{e(w["link"])}</a></p>'
        f"<p>{e(w['expires'].format(**fields))}</p>"
        f'<p style="color:#777;font-size:small">{e(w["footer"])}</p></body></html>',
        subtype="html",
    )
    msg["Content-Language"] = n.language
    return msg


SURVEY: Final = register(
    NoticeKind(
        name="survey",
        model=SurveyNotice,
        event=lambda n: "survey",
        customer=lambda n: str(n.customer),
        subject=lambda n: str(n.case_id),
        identity=lambda n: f"{n.customer}\x1f{n.case_id}\x1fsurvey\x1f{n.survey_id}",
        webhook_event=lambda n: "case.survey",
        webhook_payload=_payload,
        render_email=render_survey_email,
        email_to=lambda n: (str(n.contact),),
    )
)
"""The follow-up's satisfaction survey (:class:`SurveyNotice`)."""
