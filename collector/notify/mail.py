"""E-mail notifications: a multipart (plain text + HTML) message, sent with stdlib smtplib.

The subject and body are in the customer's language (``en`` or ``zh-CN``), times in the
customer's time zone. Every message of one case carries the same ``References`` header, so
mail clients thread opened → acknowledged → resolved together; the ``Message-ID`` is derived
from the notification id, so a retried message is recognisably the same message.

>>> from checks.api import Severity
>>> from collector.notify.config import CustomerNotifyConfig, EmailTarget
>>> ev = CaseEvent(event="opened", case_id="C-7", customer="acme", title="DB slow",
...                severity=Severity.CRIT, hosts=("db1",), opened_at=1_700_000_000.0,
...                event_at=1_700_000_000.0)
>>> target = EmailTarget.model_validate({"smtp_host": "127.0.0.1", "from": "diag@v.example",
...                                      "to": ["ops@c.example"]})
>>> msg = render_email(ev, CustomerNotifyConfig(language="zh-CN", timezone="Asia/Shanghai"),
...                    target, "n1")
>>> msg["Subject"]
'【应急维护】紧急事件已创建 [严重] C-7：DB slow（acme）'
>>> [p.get_content_type() for p in msg.iter_parts()]
['text/plain', 'text/html']
>>> "2023-11-15 06:13:20 CST" in msg.get_body(("plain",)).get_content()
True
"""

# The zh-CN doctest shows Chinese punctuation on purpose.
# ruff: noqa: RUF002

from __future__ import annotations

import hashlib
import html
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from collector.notify.config import CustomerNotifyConfig, EmailTarget
from collector.notify.errors import DeliveryError, scrub
from collector.notify.event import CaseEvent
from collector.notify.messages import MESSAGES, render_subject

__all__ = ["render_email", "send_email"]

_MSGID_DOMAIN = "remote-diag.invalid"


def _local_time(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)")


def _fields(event: CaseEvent, cfg: CustomerNotifyConfig) -> list[tuple[str, str]]:
    m = MESSAGES[cfg.language]
    rows = [
        (m["field.case"], event.case_id),
        (m["field.customer"], event.customer),
        (m["field.severity"], m[f"severity.{event.severity.value}"]),
        (m["field.hosts"], ", ".join(event.hosts) or "-"),
        (m["field.cause"], event.probable_cause or m["cause.unknown"]),
        (m["field.opened_at"], _local_time(event.opened_at, cfg.timezone)),
    ]
    if event.event != "opened":
        rows.append((m["field.event_at"], _local_time(event.event_at, cfg.timezone)))
    if event.actor:
        rows.append((m["field.actor"], event.actor))
    if event.note:
        rows.append((m["field.note"], event.note))
    return rows


def _text_body(event: CaseEvent, cfg: CustomerNotifyConfig) -> str:
    m = MESSAGES[cfg.language]
    lines = [m[f"intro.{event.event}"], "", event.title, ""]
    lines += [f"{name}: {value}" for name, value in _fields(event, cfg)]
    if event.url:
        lines += ["", f"{m['link']}: {event.url}"]
    lines += ["", "-- ", m["footer"], ""]
    return "\n".join(lines)


def _html_body(event: CaseEvent, cfg: CustomerNotifyConfig) -> str:
    m = MESSAGES[cfg.language]
    e = html.escape
    color = {"CRIT": "#b00020", "WARN": "#b26a00"}.get(event.severity.value, "#444444")
    rows = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;vertical-align:top">{e(name)}</th>'
        f"<td>{e(value)}</td></tr>"
        for name, value in _fields(event, cfg)
    )
    link = f'<p><a href="{e(event.url, quote=True)}">{e(m["link"])}</a></p>' if event.url else ""
    lang = "zh-CN" if cfg.language == "zh-CN" else "en"
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{e(event.title)}</title>'
        f'</head><body style="font-family:sans-serif">'
        f"<p>{e(m[f'intro.{event.event}'])}</p>"
        f'<h2 style="color:{color}">{e(event.title)}</h2>'
        f"<table>{rows}</table>{link}"
        f'<p style="color:#777;font-size:small">{e(m["footer"])}</p></body></html>'
    )


def render_email(
    event: CaseEvent, cfg: CustomerNotifyConfig, target: EmailTarget, notification: str
) -> EmailMessage:
    """The message for ``event`` in the customer's language, addressed as ``target`` says."""
    m = MESSAGES[cfg.language]
    msg = EmailMessage()
    msg["Subject"] = render_subject(
        m, event.event, m[f"severity.{event.severity.value}"], event.case_id, event.title, event.customer
    )
    msg["From"] = target.from_
    msg["To"] = ", ".join(target.to)
    msg["Date"] = format_datetime(datetime.fromtimestamp(event.event_at, ZoneInfo(cfg.timezone)))
    msg["Message-ID"] = f"<{notification}@{_MSGID_DOMAIN}>"
    thread = hashlib.sha256(f"{event.customer}\x1f{event.case_id}".encode()).hexdigest()[:32]
    msg["References"] = f"<case-{thread}@{_MSGID_DOMAIN}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Diag-Case"] = event.case_id
    msg["X-Diag-Event"] = f"case.{event.event}"
    msg.set_content(_text_body(event, cfg))
    msg.add_alternative(_html_body(event, cfg), subtype="html")
    # After the parts exist: making the message multipart moves Content-* headers into a part.
    msg["Content-Language"] = cfg.language
    return msg


def _smtp_error(exc: smtplib.SMTPResponseException, secrets: tuple[str, ...]) -> DeliveryError:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    # 4xx is "try again later" in SMTP; 5xx is permanent (bad address, auth refused, policy).
    return DeliveryError(f"SMTP {exc.smtp_code} {scrub(text, secrets)}", retryable=400 <= exc.smtp_code < 500)


def send_email(target: EmailTarget, msg: EmailMessage) -> None:
    """Send ``msg`` through ``target``'s SMTP server; raises :class:`DeliveryError` on failure.

    When the server accepts some recipients and refuses others the message counts as sent
    (resending would duplicate it for the accepted ones); the refusal is in the return of
    smtplib and is not retried.
    """
    password = target.password.get_secret_value() if target.password else ""
    secrets = (password,)
    where = f"{target.smtp_host}:{target.smtp_port}"
    try:
        with smtplib.SMTP(target.smtp_host, target.smtp_port, timeout=target.timeout_s) as smtp:
            smtp.ehlo()
            if target.starttls:
                context = ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if target.username is not None:
                smtp.login(target.username, password)
            smtp.send_message(msg, from_addr=None, to_addrs=list(target.to))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        retryable = all(400 <= code < 500 for code in codes)
        raise DeliveryError(f"SMTP {where}: all recipients refused ({codes})", retryable=retryable) from None
    except smtplib.SMTPServerDisconnected as exc:
        # smtplib reports a read timeout or a reset as "Connection unexpectedly closed: timed out".
        raise DeliveryError(f"SMTP {where}: {scrub(str(exc), secrets)}", retryable=True) from None
    except smtplib.SMTPNotSupportedError as exc:
        # The server lacks STARTTLS or AUTH: a configuration problem, not a transient one.
        raise DeliveryError(f"SMTP {where}: {scrub(str(exc), secrets)}", retryable=False) from None
    except smtplib.SMTPResponseException as exc:
        err = _smtp_error(exc, secrets)
        raise DeliveryError(f"SMTP {where}: {err}", retryable=err.retryable) from None
    except TimeoutError:
        raise DeliveryError(f"SMTP {where}: timed out after {target.timeout_s:g}s", retryable=True) from None
    except ssl.SSLError as exc:
        raise DeliveryError(
            f"SMTP {where}: TLS error {exc.reason or type(exc).__name__}", retryable=True
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        # Disconnects, refused connections, DNS failures: the server may be back later.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise DeliveryError(f"SMTP {where}: {scrub(reason, secrets)}", retryable=True) from None
