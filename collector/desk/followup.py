"""The follow-up step (回访) of a resolved case: a one-time satisfaction survey link to the
case's contact, and the callback draw of closed cases (issue 14).

:class:`FollowUp` is built by ``diag-collector serve`` from the ``surveys`` section of the
collector config (:class:`SurveyConfig`) and handed to the HTTP app; resolving a case
through the API then calls :meth:`FollowUp.start`: the case goes resolved → follow_up and,
when the contact has an e-mail address and the customer's e-mail takes ``survey``
events, a link ``<public_url>/survey/<token>`` is stored (its SHA-256 only) and queued in
the outbox as a ``survey`` notification. Closing a case calls :meth:`FollowUp.case_closed`,
which draws it for a callback with probability ``callback_fraction``, deterministically
from the case id and the secret, so a re-run never redraws.

Threat model: the token is 256 random bits (``secrets.token_urlsafe(32)``), so it cannot be
guessed; only its hash is stored; it expires (``expiry_days``) and is answered once. The
page's form carries a nonce, an HMAC of the token's hash and the render time under the
secret, valid ``NONCE_MAX_AGE_S``: a POST must come from a page rendered for that same
link (a CSRF-equivalent). The secret never leaves the collector; the draw cannot be
steered from outside (it depends on the case id only through the keyed HMAC).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from collector.store.errors import DatabaseError
from collector.store.queries import Scope
from collector.store.surveys import NewSurvey, SurveyRepo

if TYPE_CHECKING:
    from collector.notify import Notifier, NotifyConfig
    from collector.store import Store
    from collector.store.case_records import CaseRecord

__all__ = [
    "DEFAULT_QUESTIONS",
    "NONCE_MAX_AGE_S",
    "Contact",
    "FollowUp",
    "SurveyConfig",
    "SurveyQuestion",
    "contact_for",
    "drawn_for_callback",
    "hash_token",
    "issue_nonce",
    "nonce_valid",
]

log = logging.getLogger("collector.desk")

NONCE_MAX_AGE_S = 24 * 3600.0
"""How long a rendered survey page may be submitted."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SurveyQuestion(_Model):
    """One question of the service-quality form (服务质量表), rated 1 to 5."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    """Stable key the answers are stored under."""
    en: str = Field(min_length=1, max_length=200)
    zh_cn: str = Field(alias="zh-CN", min_length=1, max_length=200)

    def text(self, lang: str) -> str:
        return self.zh_cn if lang == "zh-CN" else self.en


DEFAULT_QUESTIONS: tuple[SurveyQuestion, ...] = (
    SurveyQuestion(key="response_speed", en="Speed of response", zh_cn="响应速度"),
    SurveyQuestion(key="professional_skill", en="Professional skill", zh_cn="专业技能"),
    SurveyQuestion(key="attitude", en="Service attitude", zh_cn="服务态度"),
    SurveyQuestion(key="problem_solved", en="Was the problem solved?", zh_cn="问题解决情况"),
    SurveyQuestion(key="overall", en="Overall satisfaction", zh_cn="总体满意度"),
)


class SurveyConfig(_Model):
    """The ``surveys`` section: the follow-up step's survey form and callbacks."""

    enabled: bool = True
    """Resolving a case through the API starts the follow-up step (survey link)."""
    expiry_days: float = Field(default=14.0, gt=0, le=365)
    """A survey link expires this long after it is sent."""
    questions: tuple[SurveyQuestion, ...] = Field(default=DEFAULT_QUESTIONS, min_length=1, max_length=20)
    """The service-quality form, in English and Simplified Chinese."""
    callback_fraction: float = Field(default=0.1, ge=0, le=1)
    """Share of closed cases drawn for a callback call."""
    secret: SecretStr | None = Field(default=None, min_length=16)
    """Keys the callback draw and the form nonces (``secret_file`` works too). Collectors
    sharing a store should share it; when unset, ``serve`` keeps one in ``<state_dir>``."""
    public_url: str = ""
    """Base URL of survey links; default: ``emergency.public_url``."""

    @field_validator("questions")
    @classmethod
    def _distinct(cls, value: tuple[SurveyQuestion, ...]) -> tuple[SurveyQuestion, ...]:
        keys = [q.key for q in value]
        if len(set(keys)) != len(keys):
            raise ValueError("question keys must be distinct")
        return value


def hash_token(token: str) -> str:
    """The stored form of a survey token.

    >>> len(hash_token("x")), hash_token("x") == hash_token("x")
    (64, True)
    """
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def issue_nonce(secret: bytes, token_hash: str, now: float) -> str:
    """A nonce for one rendering of the page of ``token_hash``."""
    issued = str(int(now))
    mac = hmac.new(secret, f"{token_hash}\x1f{issued}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{issued}.{mac}"


def nonce_valid(secret: bytes, token_hash: str, nonce: str, now: float) -> bool:
    """Whether ``nonce`` was issued for ``token_hash`` by this secret, less than a day ago.

    >>> n = issue_nonce(b"k" * 16, "h", 1000.0)
    >>> nonce_valid(b"k" * 16, "h", n, 1001.0), nonce_valid(b"k" * 16, "other", n, 1001.0)
    (True, False)
    >>> nonce_valid(b"k" * 16, "h", n, 1000.0 + 2 * NONCE_MAX_AGE_S), nonce_valid(b"k" * 16, "h", "x", 1.0)
    (False, False)
    """
    issued, _, _mac = nonce.partition(".")
    if not issued.isdigit() or len(issued) > 12:
        return False
    if not 0 <= now - int(issued) <= NONCE_MAX_AGE_S:
        return False
    return hmac.compare_digest(issue_nonce(secret, token_hash, int(issued)), nonce)


def drawn_for_callback(case_id: str, secret: bytes, fraction: float) -> bool:
    """Whether the closed case ``case_id`` is drawn for a callback: a keyed hash of its id
    read as a number in [0, 1), below ``fraction``. The same case always draws the same.

    >>> drawn_for_callback("C-acme-1", b"s" * 16, 1.0), drawn_for_callback("C-acme-1", b"s" * 16, 0.0)
    (True, False)
    """
    digest = hmac.new(secret, case_id.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True, slots=True)
class Contact:
    """Where a case's survey goes."""

    email: str
    language: Literal["en", "zh-CN"] | None
    """The contact's preferred language, when known."""


def contact_for(store: Store, case: CaseRecord) -> Contact | None:
    """The case's contact for its survey.

    When the case's ``contact`` names one of the customer's contacts (``王伟``, or the name
    part of ``Wang Wei <wang@acme.example>``), that contact's e-mail address and preferred
    language win; otherwise the case's ``contact`` itself, when it holds an e-mail address
    (``Wang Wei <wang@acme.example>`` or ``wang@acme.example``), language unknown.
    """
    from collector.store.customer_file import CustomerFileRepo

    text = (case.contact or "").strip()
    name, address = parseaddr(text)
    address = address if _is_address(address) else ""
    known = CustomerFileRepo(store).contact_named(Scope.everything(), case.customer, [name, text])
    language: Literal["en", "zh-CN"] | None = None
    if known is not None:
        language = "zh-CN" if known.language == "zh-CN" else "en"
        if known.email and _is_address(known.email):
            return Contact(known.email, language)
    return Contact(address, language) if address else None


def _is_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and "." in domain) and not any(c in address for c in "\r\n <>,;")


class FollowUp:
    """The follow-up step of one serving collector (see the module docstring)."""

    def __init__(
        self,
        config: SurveyConfig,
        *,
        secret: bytes,
        public_url: str,
        notify: NotifyConfig | None,
        notifier: Callable[[], Notifier | None],
    ) -> None:
        self.config = config
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self._notify = notify
        self._notifier = notifier

    def language_for(self, customer: str, contact: Contact | None) -> Literal["en", "zh-CN"]:
        """The contact's language, else the customer's notification language, else English."""
        if contact is not None and contact.language is not None:
            return contact.language
        cfg = None if self._notify is None else self._notify.for_customer(customer)
        return cfg.language if cfg is not None else "en"

    def _why_not(self, store: Store, case: CaseRecord) -> tuple[Contact | None, str]:
        contact = contact_for(store, case)
        if contact is None:
            return None, "the case's contact has no e-mail address"
        cfg = None if self._notify is None else self._notify.for_customer(case.customer)
        if cfg is None or cfg.email is None or "survey" not in cfg.email.events:
            return None, f"e-mail with survey events is not configured for customer {case.customer}"
        if self._notifier() is None:
            return None, "notifications are not running in this collector"
        return contact, ""

    def start(self, store: Store, case: CaseRecord, *, actor: str | None, now: float) -> int | None:
        """resolved → follow_up, with a survey link to the contact when one can be sent.
        Returns the survey's id (None: no survey, the timeline says why). Raises the store's
        NotFound/Conflict like any step."""
        contact, reason = self._why_not(store, case)
        repo = SurveyRepo(store)
        scope = Scope.of(case.customer)
        if contact is None:
            repo.follow_up(scope, case.id, survey=None, not_sent_reason=reason, actor=actor, now=now)
            return None
        token = secrets.token_urlsafe(32)
        language = self.language_for(case.customer, contact)
        expires = now + self.config.expiry_days * 86400.0
        survey_id = repo.follow_up(
            scope, case.id, survey=NewSurvey(hash_token(token), contact.email, language, expires),
            actor=actor, now=now,
        )  # fmt: skip
        notifier = self._notifier()
        if survey_id is not None and notifier is not None:
            from collector.notify import SurveyNotice

            try:
                notifier.notify(
                    SurveyNotice(
                        customer=case.customer, case_id=case.id, case_title=case.title[:500],
                        survey_id=survey_id, contact=contact.email, language=language,
                        link=f"{self.public_url}/survey/{token}", expires_at=expires, sent_at=now,
                    )
                )  # fmt: skip
            except (DatabaseError, ValueError) as exc:
                log.error("survey of case %s not queued: %s", case.id, type(exc).__name__)
        return survey_id

    def case_closed(self, store: Store, case: CaseRecord, *, now: float) -> bool:
        """Draw the closed case for a callback (once); whether it is selected."""
        selected = drawn_for_callback(case.id, self.secret, self.config.callback_fraction)
        return (
            SurveyRepo(store)
            .draw_callback(Scope.of(case.customer), case.id, selected=selected, now=now)
            .selected
        )
