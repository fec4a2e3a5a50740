# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""E-mail a finished inspection's report to its plan's ``recipients``.

When a run of a plan with recipients finishes, the runner queues one delivery in the store
(``report_deliveries``, once per run). The serving process's inspection loop calls
:meth:`ReportMailer.deliver_due`, which claims due deliveries with a lease (of several
collectors sharing a store, one sends a given report), renders the report in the plan's
language (PDF, or the self-contained HTML when the PDF cannot be made) and sends it through
the customer's SMTP settings (``emergency.notify.customers.<customer>.email``: server,
sender, credentials; the plan's recipients replace its ``to``). A temporary failure (a 4xx
reply, a refused connection, a timeout) is retried with the notification backoff policy; a
permanent one (5xx, no SMTP settings for the customer) marks the delivery failed with its
reason, which ``diagctl inspections show RUN`` and the API show. Nothing is dropped
silently, and the SMTP password never reaches a log line or the stored error.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final
from zoneinfo import ZoneInfo

from collector.inspections.runner import Runner, render_run_report
from collector.notify.config import DeliveryPolicy, EmailTarget
from collector.notify.errors import DeliveryError
from collector.notify.mail import send_email
from collector.notify.notifier import backoff_delay
from collector.reports import Lang, ReportError
from collector.store.queries import Scope
from collector.store.reports import DeliveryRecord

__all__ = ["LEASE_S", "ReportMailer"]

log = logging.getLogger("collector.inspections")

LEASE_S: Final = 300.0
"""How long a claimed delivery is this collector's before another may retry it."""

_SUBJECT: Final = {
    "en": "Inspection report: {plan}, {customer}, {date}",
    "zh-CN": "巡检报告：{plan}，{customer}，{date}",
}
_BODY: Final = {
    "en": (
        "The inspection report of plan {plan} for {customer} is attached.\n\n"
        "Period: {start} to {end}\n"
        "Coverage: {answered} of {selected} hosts answered\n"
        "Overall health score: {score}\n"
        "Findings: {crit} critical, {warn} warning, {unknown} unknown\n\n"
        "Run: {run}\n"
    ),
    "zh-CN": (
        "附件为{customer}巡检计划 {plan} 的巡检报告。\n\n"
        "巡检周期：{start} 至 {end}\n"
        "覆盖率：{selected} 台主机中 {answered} 台已响应\n"
        "总体健康评分：{score}\n"
        "发现问题：严重 {crit} 项，警告 {warn} 项，未知 {unknown} 项\n\n"
        "巡检编号：{run}\n"
    ),
}


class ReportMailer:
    """Sends queued report e-mails; see the module docstring."""

    def __init__(
        self,
        runner: Runner,
        email_for: Callable[[str], EmailTarget | None],
        policy: DeliveryPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.runner = runner
        self.repo = runner.repo
        self.reports = runner.reports
        self.email_for = email_for
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.rand = rand

    def deliver_due(self, limit: int = 10) -> list[DeliveryRecord]:
        """Attempt every due delivery (blocking: run it in a thread); returns them as they end."""
        now = self.clock()
        done = []
        for delivery in self.reports.claim_deliveries(now, LEASE_S, limit):
            self._attempt(delivery)
            done.extend(self.reports.deliveries(Scope.of(delivery.customer), delivery.run_id))
        return done

    def _attempt(self, delivery: DeliveryRecord) -> None:
        attempts = delivery.attempts + 1
        target = self.email_for(delivery.customer)
        if target is None:
            self._give_up(
                delivery,
                attempts,
                f"no e-mail settings for customer {delivery.customer!r}: add "
                f"emergency.notify.customers.{delivery.customer}.email to the collector config",
            )
            return
        try:
            message = self.message(delivery, target)
            send_email(target.model_copy(update={"to": delivery.recipients}), message)
        except DeliveryError as exc:
            age = self.clock() - delivery.created_at
            if exc.retryable and attempts < self.policy.max_attempts and age < self.policy.max_age_s:
                delay = backoff_delay(self.policy, attempts, self.rand())
                log.warning(
                    "inspection report of %s to %s: %s; retrying in %.0f s",
                    delivery.run_id,
                    ", ".join(delivery.recipients),
                    exc,
                    delay,
                )
                retry_at = self.clock() + delay
                self.reports.finish_delivery(
                    delivery.id, state="pending", attempts=attempts, next_at=retry_at, error=str(exc)
                )
            else:
                self._give_up(delivery, attempts, str(exc))
            return
        self.reports.finish_delivery(delivery.id, state="sent", attempts=attempts, next_at=delivery.next_at)
        log.info("inspection report of %s sent to %s", delivery.run_id, ", ".join(delivery.recipients))

    def _give_up(self, delivery: DeliveryRecord, attempts: int, reason: str) -> None:
        log.error("inspection report of %s not sent: %s", delivery.run_id, reason)
        self.reports.finish_delivery(
            delivery.id, state="failed", attempts=attempts, next_at=delivery.next_at, error=reason
        )

    def message(self, delivery: DeliveryRecord, target: EmailTarget) -> EmailMessage:
        """The e-mail: a summary in the plan's language, the report attached (PDF, else HTML)."""
        lang: Lang = "zh-CN" if delivery.lang == "zh-CN" else "en"
        run = self.repo.run(Scope.of(delivery.customer), delivery.run_id)
        profile = self.repo.profile(Scope.of(delivery.customer), delivery.customer)
        zone = ZoneInfo(profile.timezone)

        def day(ts: float | None) -> str:
            return "-" if ts is None else datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d")

        try:
            report = render_run_report(self.runner, run, lang, "pdf")
            subtype = "pdf"
        except ReportError as exc:  # WeasyPrint missing or failing: the HTML report says the same
            log.warning("inspection report of %s: no PDF (%s); sending HTML", run.id, type(exc).__name__)
            report = render_run_report(self.runner, run, lang, "html")
            subtype = "html"
        _, content = self.reports.report_content(Scope.of(delivery.customer), report.id)
        facts = {
            "plan": run.plan,
            "customer": profile.name,
            "date": day(run.finished_at),
            "start": day(run.period_start),
            "end": day(run.period_end),
            "answered": run.hosts_answered or 0,
            "selected": run.hosts_selected or 0,
            "score": "-" if run.overall_score is None else run.overall_score,
            "crit": run.counts.get("CRIT", 0),
            "warn": run.counts.get("WARN", 0),
            "unknown": run.counts.get("UNKNOWN", 0),
            "run": run.id,
        }
        msg = EmailMessage()
        msg["Subject"] = _SUBJECT[lang].format(**facts)
        msg["From"] = target.from_
        msg["To"] = ", ".join(delivery.recipients)
        msg["Date"] = format_datetime(datetime.fromtimestamp(self.clock(), zone))
        # Stable across retries, so a receiver can drop a duplicate after a crash mid-send.
        digest = hashlib.sha256(f"{delivery.customer}\x1f{run.id}".encode()).hexdigest()[:32]
        msg["Message-ID"] = f"<inspection-{digest}@remote-diag>"
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Diag-Inspection"] = run.id
        msg.set_content(_BODY[lang].format(**facts))
        msg.add_attachment(
            content,
            maintype="application" if subtype == "pdf" else "text",
            subtype=subtype,
            filename=f"inspection-{run.id}.{lang}.{subtype}",
        )
        msg["Content-Language"] = lang
        return msg
