"""The ``surveys`` config section, the serving collector's secret, and the ``survey``
notification's e-mail (to the contact, in the contact's language, through the customer's
SMTP settings)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from collector.cli.config import CollectorConfig, load_config
from collector.cli.followup import SECRET_FILE, build_followup, survey_secret
from collector.desk.followup import DEFAULT_QUESTIONS, SurveyConfig
from collector.notify import SURVEY, SurveyNotice
from tests.collector.surveys.app import notify_config


def test_questions_and_fraction_come_from_the_config() -> None:
    cfg = CollectorConfig.model_validate(
        {"surveys": {"expiry_days": 7, "callback_fraction": 0.25,
                     "questions": [{"key": "speed", "en": "Speed", "zh-CN": "速度"}]}}
    )  # fmt: skip
    assert (cfg.surveys.expiry_days, cfg.surveys.callback_fraction) == (7, 0.25)
    assert [q.text("zh-CN") for q in cfg.surveys.questions] == ["速度"]
    assert [q.key for q in SurveyConfig().questions] == [q.key for q in DEFAULT_QUESTIONS]
    assert len(DEFAULT_QUESTIONS) == 5
    for bad, field in (
        ({"callback_fraction": 1.5}, "callback_fraction"),
        ({"expiry_days": 0}, "expiry_days"),
        (
            {"questions": [{"key": "a", "en": "A", "zh-CN": "甲"}, {"key": "a", "en": "B", "zh-CN": "乙"}]},
            "distinct",
        ),
        ({"questions": [{"key": "a", "en": "A"}]}, "zh-CN"),
        ({"secret": "short"}, "secret"),
        ({"bogus": 1}, "bogus"),
    ):
        with pytest.raises(ValidationError, match=field):
            CollectorConfig.model_validate({"surveys": bad})


def test_the_secret_may_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "survey-secret").write_text("s" * 40 + "\n")
    (tmp_path / "c.yaml").write_text(f"surveys:\n  secret_file: {tmp_path / 'survey-secret'}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.surveys.secret is not None and cfg.surveys.secret.get_secret_value() == "s" * 40
    assert "s" * 40 not in repr(cfg)


def test_the_secret_is_kept_in_the_state_dir_once(tmp_path: Path) -> None:
    cfg = CollectorConfig.model_validate({"state_dir": str(tmp_path / "state")})
    first = survey_secret(cfg)
    path = tmp_path / "state" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 64
    assert survey_secret(cfg) == first  # the next start keeps it: nonces and draws stay valid
    configured = CollectorConfig.model_validate(
        {"state_dir": str(tmp_path / "state"), "surveys": {"secret": "x" * 20}}
    )
    assert survey_secret(configured) == b"x" * 20
    path.write_text("short\n")
    with pytest.raises(OSError, match="delete it"):
        survey_secret(cfg)
    followup = build_followup(configured)
    assert followup.public_url == f"http://{configured.http.listen}"  # no public_url set anywhere
    linked = CollectorConfig.model_validate(
        {"state_dir": str(tmp_path / "state"), "emergency": {"public_url": "https://diag.example.com/"},
         "surveys": {"secret": "x" * 20}}
    )  # fmt: skip
    assert build_followup(linked).public_url == "https://diag.example.com"


def test_the_survey_email_goes_to_the_contact_in_their_language() -> None:
    notice = SurveyNotice(
        customer="acme", case_id="C-acme-3", case_title="报表很慢", survey_id=3, contact="wang@acme.example",
        language="zh-CN", link="https://diag.vendor.example/survey/tok", expires_at=1_800_000_000.0,
        sent_at=1_799_000_000.0,
    )  # fmt: skip
    cfg = notify_config("acme").for_customer("acme")
    assert cfg is not None and cfg.email is not None
    assert SURVEY.email_to is not None
    target = cfg.email.model_copy(update={"to": SURVEY.email_to(notice)})
    msg = SURVEY.render_email(notice, cfg, target, "nid")
    assert msg["To"] == "wang@acme.example" and "ops@acme.example" not in str(msg)
    assert "【服务回访】" in str(msg["Subject"]) and msg["Content-Language"] == "zh-CN"
    text = msg.get_body(("plain",))
    assert text is not None and "https://diag.vendor.example/survey/tok" in text.get_content()
    english = SURVEY.render_email(notice.model_copy(update={"language": "en"}), cfg, target, "nid")
    assert "how did we do?" in str(english["Subject"])
    payload = SURVEY.webhook_payload(notice, "nid")
    assert "tok" not in str(payload) and "wang" not in str(payload)  # webhooks never get the link


def test_the_page_wording_exists_in_both_languages() -> None:
    import json
    from importlib import resources

    words = {
        lang: json.loads(
            resources.files("collector.desk").joinpath("i18n", f"{lang}.json").read_text("utf-8")
        )
        for lang in ("en", "zh-CN")
    }
    assert set(words["en"]) == set(words["zh-CN"]) and all(words["zh-CN"].values())
    template = resources.files("collector.desk").joinpath("templates", "survey.html").read_text("utf-8")
    import re

    used = set(re.findall(r't\("([a-z_.]+)"\)', template)) | {f"scale.{n}" for n in range(1, 6)}
    used |= {
        f"error.{r}" for r in ("unknown", "expired", "used", "nonce", "throttled", "missing", "bad_form")
    }
    assert used <= set(words["en"]), used - set(words["en"])
