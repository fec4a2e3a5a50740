"""Message catalogues (``i18n/en.json``, ``i18n/zh-CN.json``) and value formatting per language.

Every label a report prints comes from a catalogue; both catalogues have the same keys
(a test checks it). Values are formatted here, not in templates: dates in the customer's
time zone, numbers with their unit, durations.

>>> f = Formatter("zh-CN", "Asia/Shanghai")
>>> f.t("report.inspection.title")
'巡检报告'
>>> f.duration(8100)
'2 小时 15 分钟'
>>> Formatter("en", "UTC").value(1610612736, Unit.BYTES)
'1.5 GiB'
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from functools import cache
from importlib import resources
from typing import Any, get_args

from checks.api import Layer, Severity, Unit
from collector.reports.model import Lang
from collector.schedule.cron import load_zone

__all__ = ["LANGS", "Formatter", "catalogue", "css_string"]

LANGS: tuple[Lang, ...] = get_args(Lang)


@cache
def catalogue(lang: Lang) -> dict[str, str]:
    """The message catalogue of ``lang`` (read once per process)."""
    if lang not in LANGS:
        raise ValueError(f"unknown report language {lang!r}: expected one of {', '.join(LANGS)}")
    text = resources.files("collector.reports").joinpath("i18n", f"{lang}.json").read_text("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"message catalogue {lang}.json must map keys to strings")
    return data


def css_string(text: str) -> str:
    """``text`` as the inside of a double-quoted CSS string (safe inside a ``<style>`` element)."""
    out = []
    for ch in text:
        if ch in "\"\\<>&'" or ord(ch) < 0x20:
            out.append(f"\\{ord(ch):x} ")
        else:
            out.append(ch)
    return "".join(out)


_BINARY = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


class Formatter:
    """Translates labels and formats values for one language and time zone (used by templates)."""

    def __init__(self, lang: Lang, timezone: str) -> None:
        self.lang: Lang = lang
        self.messages = catalogue(lang)
        self.tz: tzinfo = load_zone(timezone)
        self.timezone = timezone

    def t(self, key: str, **params: Any) -> str:
        """The label ``key``, with ``{name}`` placeholders filled from ``params``."""
        try:
            text = self.messages[key]
        except KeyError:
            raise KeyError(f"message {key!r} is missing from the {self.lang} catalogue") from None
        return text.format(**params) if params else text

    def severity(self, severity: Severity) -> str:
        return self.t(f"sev.{severity.value}")

    def layer(self, layer: Layer | None) -> str:
        return self.t("label.dash") if layer is None else self.t(f"layer.{layer.value}")

    def dt(self, moment: datetime | None) -> str:
        """``YYYY-MM-DD HH:MM`` in the customer's zone."""
        if moment is None:
            return self.t("label.dash")
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def time(self, moment: datetime) -> str:
        """``HH:MM:SS`` in the customer's zone (timeline rows under a date)."""
        return moment.astimezone(self.tz).strftime("%H:%M:%S")

    def date(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%Y-%m-%d")

    def num(self, value: float, digits: int = 1) -> str:
        """Grouped thousands; ``digits`` decimals with trailing zeros dropped."""
        if float(value).is_integer():
            return f"{int(value):,}"
        text = f"{value:,.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text

    def percent(self, value: float) -> str:
        return f"{self.num(value)} %"

    def share(self, ratio: float) -> str:
        """A 0..1 ratio as a percentage (a cause's confidence)."""
        return self.percent(round(ratio * 100, 1))

    def value(self, value: float, unit: Unit) -> str:
        """``value`` with its unit, scaled for reading (bytes in binary units, seconds in ms)."""
        if unit in (Unit.BYTES, Unit.BYTES_PER_SECOND):
            suffix = "/s" if unit is Unit.BYTES_PER_SECOND else ""
            for name, size in _BINARY:
                if abs(value) >= size:
                    return f"{self.num(value / size)} {name}{suffix}"
            return f"{self.num(value)} B{suffix}"
        if unit is Unit.SECONDS:
            if 0 < abs(value) < 1:
                return f"{self.num(value * 1000)} ms"
            return f"{self.num(value, 2)} s"
        if unit is Unit.PERCENT:
            return self.percent(value)
        if unit is Unit.DAYS:
            return self.t("unit.days", n=self.num(value))
        if unit is Unit.PER_SECOND:
            return f"{self.num(value)}/s"
        if unit is Unit.CELSIUS:
            return f"{self.num(value)} °C"
        if unit is Unit.HERTZ:
            return f"{self.num(value / 1e6)} MHz" if abs(value) >= 1e6 else f"{self.num(value)} Hz"
        if unit is Unit.BOOLEAN:
            return self.t("bool.true" if value else "bool.false")
        if unit is Unit.RATIO:
            return self.num(value, 2)
        return self.num(value)

    def signed(self, value: float, unit: Unit) -> str:
        """A change with an explicit sign."""
        text = self.value(abs(value), unit)
        return ("+" if value > 0 else "\u2212" if value < 0 else "±") + text

    def duration(self, seconds: float | None) -> str:
        """``2 h 15 min`` / ``2 小时 15 分钟``: the two largest units."""
        if seconds is None:
            return self.t("label.dash")
        total = round(seconds)
        parts: list[str] = []
        for key, size in (("dur.d", 86400), ("dur.h", 3600), ("dur.min", 60), ("dur.s", 1)):
            if total >= size or (key == "dur.s" and not parts):
                parts.append(self.t(key, n=total // size))
                total %= size
            if len(parts) == 2:
                break
        return " ".join(parts)

    def css_text(self, text: str) -> str:
        """Any text as the inside of a CSS string."""
        return css_string(text)

    def css(self, key: str) -> str:
        """A label as the inside of a CSS string (page headers and footers)."""
        return css_string(self.t(key))
