from __future__ import annotations

import pytest
from pydantic import ValidationError

from collector.notify import (
    CustomerNotifyConfig,
    DeliveryPolicy,
    EmailTarget,
    NotifyConfig,
    WebhookTarget,
    redact_url,
)
from tests.collector.notify.factories import SECRET, SMTP_PASSWORD

HOOK = {"url": "https://hooks.example.com/x", "secret": SECRET}
MAIL = {"smtp_host": "mail.example.com", "from": "diag@vendor.example", "to": ["ops@acme.example"]}


def test_defaults():
    hook = WebhookTarget.model_validate(HOOK)
    mail = EmailTarget.model_validate(MAIL)
    assert hook.events == ("opened", "acknowledged", "resolved", "reopened", "sla_breach")
    assert hook.timeout_s == 10.0
    assert (mail.smtp_port, mail.starttls, mail.username) == (587, True, None)
    cfg = NotifyConfig()
    assert cfg.for_customer("acme") is None
    assert cfg.delivery == DeliveryPolicy()


def test_secrets_never_show_in_repr_or_dump():
    cfg = CustomerNotifyConfig.model_validate(
        {"webhooks": [HOOK], "email": {**MAIL, "username": "diag", "password": SMTP_PASSWORD}}
    )
    for text in (repr(cfg), str(cfg), cfg.model_dump_json()):
        assert SECRET not in text
        assert SMTP_PASSWORD not in text


def _error(model, data) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("model", "data", "needle"),
    [
        pytest.param(WebhookTarget, {**HOOK, "url": "ftp://x/y"}, "http:// or https://", id="scheme"),
        pytest.param(WebhookTarget, {**HOOK, "url": "https:///x"}, "with a host", id="no host"),
        pytest.param(
            WebhookTarget, {**HOOK, "url": "https://u:p@h/x"}, "credentials in the URL", id="userinfo"
        ),
        pytest.param(WebhookTarget, {**HOOK, "secret": "short"}, "at least 16", id="short secret"),
        pytest.param(WebhookTarget, {**HOOK, "events": []}, "at least one of", id="no events"),
        pytest.param(WebhookTarget, {**HOOK, "events": ["closed"]}, "opened", id="unknown event"),
        pytest.param(WebhookTarget, {**HOOK, "events": ["opened", "opened"]}, "duplicate", id="dup event"),
        pytest.param(WebhookTarget, {**HOOK, "name": "a b"}, "letters, digits", id="bad name"),
        pytest.param(WebhookTarget, {**HOOK, "timeout_s": 0}, "greater than 0", id="zero timeout"),
        pytest.param(WebhookTarget, {**HOOK, "verify": False}, "Extra inputs", id="unknown key"),
        pytest.param(EmailTarget, {**MAIL, "to": []}, "at least 1", id="no recipient"),
        pytest.param(EmailTarget, {**MAIL, "to": ["nobody"]}, "e-mail address", id="bad recipient"),
        pytest.param(EmailTarget, {**MAIL, "from": "a@b\nBcc: c@d"}, "one line", id="header injection"),
        pytest.param(EmailTarget, {**MAIL, "username": "u"}, "go together", id="user without password"),
        pytest.param(
            EmailTarget,
            {**MAIL, "username": "u", "password": "p", "starttls": False},
            "need starttls",
            id="clear-text credentials",
        ),
        pytest.param(EmailTarget, {**MAIL, "smtp_port": 70000}, "less than or equal", id="port"),
        pytest.param(CustomerNotifyConfig, {"timezone": "Mars/Olympus"}, "IANA time zone", id="bad tz"),
        pytest.param(CustomerNotifyConfig, {"language": "fr"}, "'en' or 'zh-CN'", id="bad language"),
        pytest.param(
            CustomerNotifyConfig,
            {"webhooks": [{**HOOK, "name": "a"}, {**HOOK, "name": "a", "url": "https://h2/"}]},
            "distinct names",
            id="duplicate webhook names",
        ),
        pytest.param(
            DeliveryPolicy, {"backoff_initial_s": 60, "backoff_max_s": 10}, "at least backoff", id="backoff"
        ),
    ],
)
def test_invalid_config_is_rejected_with_a_clear_reason(model, data, needle):
    message = _error(model, data)
    assert needle in message
    assert SECRET not in message


def test_loopback_relay_may_take_credentials_without_starttls():
    mail = EmailTarget.model_validate(
        {**MAIL, "smtp_host": "127.0.0.1", "starttls": False, "username": "u", "password": "p"}
    )
    assert mail.username == "u"


def test_webhook_key_is_secret_free_and_stable():
    hook = WebhookTarget.model_validate({**HOOK, "url": "https://hooks.example.com/T0/B0/tok3n"})
    assert hook.key == WebhookTarget.model_validate({**HOOK, "url": hook.url}).key
    assert "tok3n" not in hook.key and "tok3n" not in hook.label
    assert hook.label.endswith("(https://hooks.example.com/…)")
    assert WebhookTarget.model_validate({**HOOK, "name": "pagerduty"}).key == "pagerduty"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://h.example/a?b=c", "https://h.example/…", id="path and query"),
        pytest.param("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/…", id="port"),
        pytest.param("http://[::1]:9/x", "http://[::1]:9/…", id="ipv6"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected
