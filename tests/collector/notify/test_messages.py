"""E-mail wording: completeness and the exact subjects (full-width punctuation is intended)."""

# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from checks.api import Severity
from collector.notify import EVENT_KINDS
from collector.notify.messages import MESSAGES, render_subject


def test_every_language_has_every_key_and_the_same_fields():
    keys = set(MESSAGES["en"])
    for lang, messages in MESSAGES.items():
        assert set(messages) == keys, lang
        for key, text in messages.items():
            assert text.strip(), (lang, key)
    needed = {f"event.{e}" for e in EVENT_KINDS} | {f"intro.{e}" for e in EVENT_KINDS}
    needed |= {f"severity.{s.value}" for s in Severity}
    assert needed <= keys


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param("opened", "【应急维护】紧急事件已创建 [严重] C-1：磁盘延迟升高（acme）", id="opened"),
        pytest.param("acknowledged", "【应急维护】紧急事件已受理 [严重] C-1：磁盘延迟升高（acme）", id="ack"),
        pytest.param(
            "resolved", "【应急维护】紧急事件已解决 [严重] C-1：磁盘延迟升高（acme）", id="resolved"
        ),
        pytest.param(
            "reopened", "【应急维护】紧急事件已重新打开 [严重] C-1：磁盘延迟升高（acme）", id="reopened"
        ),
    ],
)
def test_chinese_subjects(event, expected):
    m = MESSAGES["zh-CN"]
    assert render_subject(m, event, m["severity.CRIT"], "C-1", "磁盘延迟升高", "acme") == expected


def test_english_subject():
    m = MESSAGES["en"]
    assert (
        render_subject(m, "acknowledged", m["severity.WARN"], "C-1", "Disk latency up", "acme")
        == "[Emergency maintenance] Case acknowledged [Warning] C-1: Disk latency up (acme)"
    )


def test_braces_in_data_are_not_format_fields():
    m = MESSAGES["en"]
    assert "{x}" in render_subject(m, "opened", "Critical", "C-1", "odd {x} title", "acme")
