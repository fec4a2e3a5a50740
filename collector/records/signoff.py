"""Customer sign-off of a service record: one-time links and the page the contact signs on.

An engineer or service manager asks a named contact of the customer to sign one record
(``POST /api/v1/records/{id}/signoff``); the contact opens ``/sign/<token>``, sees the
record, ticks the statement and signs. Stored: who (the contact the link names), when,
from where (client address and user agent) and the statement exactly as shown, beside the
SHA-256 of the record's bytes the statement names.

Threat model (the page is reachable without an account; the token is the only credential):

- **Guessing or forging a link**: the token is 32 random bytes (``dgs_`` + 43 characters);
  a malformed or unknown token gets the same "not valid" page, without touching more than
  one indexed lookup. Only the token's SHA-256 is stored, so a copy of the database signs
  nothing; the token is shown once, to the person who made the link.
- **Replaying a link**: signing is a compare-and-set on ``signed_at IS NULL`` and
  ``expires_at > now`` (:meth:`collector.store.records.RecordRepo.sign`): the second use,
  a use after expiry, or two submissions racing get "already signed" / "expired", and
  nothing is written for them.
- **Signing something else**: a link is bound to one record id and to the SHA-256 of its
  bytes when the link was made; the form carries the record id and hash the contact saw,
  and a form for another record or version, or a record whose bytes changed since, is
  refused. Records are never rewritten (a change is a new record), so what was signed
  stays what is stored; ``diagctl records verify`` finds any record altered behind the
  collector's back.
- **Another customer's people**: links are made only through the API by staff (engineer,
  service manager), for records in their scope; customer admins and viewers cannot make
  links (403), and another customer's record is 404 like a missing one. Listing
  signatures is scoped like the records.
- **Leaking the token**: the pages send ``Referrer-Policy: no-referrer`` and
  ``Cache-Control: no-store``, load nothing from elsewhere (CSP ``default-src 'none'``,
  no JavaScript), may not be framed by another site, and the record is shown in a
  sandboxed frame of our own origin. Client address and user agent are cut to their
  columns' sizes; the contact's name is data, escaped by Jinja2.
- **Cross-site posts**: a forged form needs the token, which is the secret; the form is
  read only as ``application/x-www-form-urlencoded`` of at most 4 KiB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from collector.records.i18n import RecordFormatter
from collector.reports.i18n import LANGS
from collector.reports.model import Lang
from collector.store.queries import Scope
from collector.store.records import RecordRepo, SignoffRecord
from collector.store.reports import ReportRecord
from collector.store.tokens import hash_token, new_token

__all__ = [
    "DEFAULT_TTL_S",
    "FORM_MAX_BYTES",
    "LINK_KIND",
    "MAX_TTL_S",
    "PAGE_HEADERS",
    "RECORD_HEADERS",
    "SignOutcome",
    "bad_form",
    "link_problem",
    "make_link",
    "page_lang",
    "render_page",
    "sign",
    "statement",
    "token_hash",
    "unknown_link",
]

LINK_KIND = "dgs"
DEFAULT_TTL_S = 7 * 86400.0
MAX_TTL_S = 30 * 86400.0
FORM_MAX_BYTES = 4096
_TOKEN = re.compile(rf"^{LINK_KIND}_[A-Za-z0-9_-]{{43}}$")

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
RECORD_HEADERS = {
    # the record itself, in a frame of the sign-off page: no script, nothing fetched
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox; "
        "frame-ancestors 'self'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
}


def token_hash(token: str) -> str | None:
    """The SHA-256 the store keeps for ``token``; None for anything that is not a link token."""
    return hash_token(token) if _TOKEN.match(token) else None


def make_link(
    repo: RecordRepo,
    scope: Scope,
    report_id: int,
    *,
    contact: str,
    contact_email: str | None,
    lang: Lang,
    actor: str,
    now: float,
    ttl_s: float = DEFAULT_TTL_S,
) -> tuple[SignoffRecord, str]:
    """A new link (and its token, shown once) for ``contact`` to sign record ``report_id``."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"a link lives between 1 second and {MAX_TTL_S / 86400:.0f} days")
    token = new_token(LINK_KIND)
    link = repo.create_link(
        scope,
        report_id,
        token_hash=hash_token(token),
        contact=contact,
        contact_email=contact_email,
        lang=lang,
        created_by=actor,
        expires_at=now + ttl_s,
    )
    return link, token


def statement(record: ReportRecord, link: SignoffRecord, lang: Lang) -> str:
    """What the contact confirms, in ``lang``: names the record and the hash of its bytes."""
    f = RecordFormatter(lang)
    return f.t(
        "sign.statement",
        contact=link.contact,
        kind=f.t(f"kind.{record.kind}"),
        subject=record.subject,
        id=record.id,
        sha256=link.report_sha256,
    )


@dataclass(frozen=True, slots=True)
class SignOutcome:
    """What the page shows after a submission: a status and the template's context."""

    status: int
    template: str
    context: dict[str, Any]


def _error(status: int, key: str, **params: Any) -> SignOutcome:
    return SignOutcome(status, "sign_error.html", {"key": key, "params": params})


def unknown_link() -> SignOutcome:
    """The page for a malformed, forged or unknown token (or a link whose record is gone)."""
    return _error(404, "sign.error.unknown")


def bad_form() -> SignOutcome:
    """The page for a submission that is not a small urlencoded form."""
    return _error(400, "sign.error.form")


def link_problem(link: SignoffRecord | None, now: float, lang: Lang) -> SignOutcome | None:
    """The error page for a link that cannot be used now (None when it can)."""
    if link is None:
        return unknown_link()
    f = RecordFormatter(lang)
    state = link.state(now)
    if state == "signed":
        return _error(409, "sign.error.used", at=f.ts(link.signed_at))
    if state == "expired":
        return _error(410, "sign.error.expired", at=f.ts(link.expires_at))
    return None


def sign(
    repo: RecordRepo,
    hashed: str,
    link: SignoffRecord,
    record: ReportRecord,
    fields: dict[str, str],
    *,
    lang: Lang,
    client_addr: str | None,
    user_agent: str | None,
    now: float,
) -> SignOutcome:
    """Sign ``record`` with ``link`` (looked up by its token's hash ``hashed``) from the
    posted ``fields`` (record, sha256, confirm)."""
    problem = link_problem(link, now, lang)
    if problem is not None:
        return problem
    if fields.get("record") != str(link.report_id) or fields.get("sha256") != link.report_sha256:
        return _error(409, "sign.error.mismatch")
    if fields.get("confirm") != "yes":
        return SignOutcome(422, "sign.html", {"must_confirm": True})
    if record.sha256 != link.report_sha256:
        return _error(409, "sign.error.changed")
    text = statement(record, link, lang)
    signed = repo.sign(
        hashed,
        report_id=link.report_id,
        report_sha256=link.report_sha256,
        client_addr=(client_addr or "")[:64] or None,
        user_agent=(user_agent or "")[:400] or None,
        statement=text,
    )
    if signed is None:  # raced with another submission, expired meanwhile, or the bytes changed
        again = repo.link(hashed)
        return link_problem(again, now, lang) or _error(409, "sign.error.changed")
    return SignOutcome(200, "sign_done.html", {"signed": signed})


def page_lang(requested: str | None, link: SignoffRecord | None) -> Lang:
    """``?lang=`` when it is a report language, else the link's, else English."""
    for wanted in (requested, None if link is None else link.lang):
        for lang in LANGS:
            if wanted == lang:
                return lang
    return "en"


@cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("collector.records", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(template: str, lang: Lang, *, vendor: str, **context: Any) -> str:
    """One of the sign-off pages (``sign.html``, ``sign_done.html``, ``sign_error.html``)."""
    f = RecordFormatter(lang)
    other: Lang = "en" if lang == "zh-CN" else "zh-CN"
    return _env().get_template(template).render(f=f, lang=lang, other_lang=other, vendor=vendor, **context)
