"""The service records' labels (``i18n/en.json``, ``i18n/zh-CN.json``) on top of the reports'.

>>> RecordFormatter("zh-CN").t("kind.repair")
'维修服务报告'
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from collector.reports.i18n import Formatter, catalogue
from collector.reports.model import Lang

__all__ = ["RecordFormatter", "record_catalogue"]


@cache
def record_catalogue(lang: Lang) -> dict[str, str]:
    """The reports' catalogue with the records' own labels on top (read once per process)."""
    text = resources.files("collector.records").joinpath("i18n", f"{lang}.json").read_text("utf-8")
    return {**catalogue(lang), **json.loads(text)}


class RecordFormatter(Formatter):
    """The reports' :class:`Formatter` (dates, units, durations) with the records' labels."""

    def __init__(self, lang: Lang, timezone: str = "UTC") -> None:
        super().__init__(lang, timezone)
        self.messages = record_catalogue(lang)

    def ts(self, seconds: float | None) -> str:
        from datetime import UTC, datetime

        return self.dt(None if seconds is None else datetime.fromtimestamp(seconds, UTC))
