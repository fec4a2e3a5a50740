"""The fault-analysis report's wording from a case's causes: both languages, from keys and params."""

# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from collector.reports.fault import _Clock, cause_label, cause_reason

CLOCK = _Clock(ZoneInfo("Asia/Shanghai"))
ONSET = "2026-11-24T06:02:00+00:00"


@pytest.mark.parametrize(
    ("cause", "en", "zh"),
    [
        pytest.param(
            {
                "kind": "layer",
                "layer": "storage",
                "host": "db1",
                "reason_key": "CAUSE_LAYER_FIRST",
                "params": {
                    "layer": "storage",
                    "host": "db1",
                    "onset": ONSET,
                    "what": "disk await",
                    "explains": 2,
                },
            },
            "The storage layer on db1 went bad first (disk await, from 2026-11-24 14:02) and explains 2",
            "db1 的存储层最先出现异常（disk await，自 2026-11-24 14:02 起），可以解释其后较高层级的 2 个",
            id="layer first",
        ),
        pytest.param(
            {
                "kind": "layer",
                "layer": "application",
                "host": "app1",
                "reason_key": "CAUSE_LAYER_SYMPTOM",
                "params": {
                    "layer": "application",
                    "host": "app1",
                    "onset": ONSET,
                    "lower_layer": "storage",
                    "lower_host": "db1",
                },
            },
            "after the storage layer on db1: more likely a symptom",
            "晚于 db1 的存储层：更可能是症状而非原因。",
            id="layer symptom",
        ),
        pytest.param(
            {
                "kind": "change",
                "host": "web1",
                "reason_key": "CAUSE_CHANGE_BEFORE_ONSET",
                "params": {
                    "change": "shop 4.2.0 -> 4.2.1",
                    "host": "web1",
                    "at": ONSET,
                    "before_onset_s": 600,
                },
            },
            "shop 4.2.0 -> 4.2.1 on web1 at 2026-11-24 14:02, 10 min before",
            "web1 于 2026-11-24 14:02 发生变更（shop 4.2.0 -> 4.2.1），在性能下降开始前 10 分钟",
            id="change",
        ),
        pytest.param(
            {
                "kind": "agent_silent",
                "host": "db2",
                "reason_key": "CAUSE_AGENT_SILENT",
                "params": {"host": "db2", "last_seen": ONSET, "neighbours": 3, "neighbours_reporting": 2},
            },
            "while 2 of 3 neighbour(s) kept reporting",
            "3 个相邻主机中有 2 个仍在上报",
            id="agent silent",
        ),
        pytest.param(
            {"kind": "site_outage", "reason_key": "CAUSE_SITE_OUTAGE", "params": {}},
            "site or network outage",
            "站点或网络中断",
            id="site outage",
        ),
        pytest.param(
            {"kind": "layer", "reason_key": "CAUSE_FROM_THE_FUTURE", "reason": "an English reason"},
            "an English reason",
            "an English reason",
            id="unknown key keeps the stored reason",
        ),
    ],
)
def test_cause_reasons_in_both_languages(cause: dict[str, object], en: str, zh: str) -> None:
    text = cause_reason(cause, CLOCK)
    assert en in text.en
    assert zh in text.zh_cn


def test_cause_labels() -> None:
    assert cause_label({"kind": "layer", "layer": "storage", "host": "db1"}).zh_cn == "db1 的存储层"
    assert cause_label({"kind": "layer", "layer": "storage", "host": "db1"}).en == "Storage on db1"
    change = cause_label({"kind": "change", "host": "web1", "params": {"change": "config changed"}})
    assert (change.en, change.zh_cn) == ("Change on web1: config changed", "web1 上的变更：config changed")
