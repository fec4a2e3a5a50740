"""The service record model: one typed document for every service record kind.

A record is a title, facts about its subject, and sections; each section holds prose, more
facts, a table or a chart. Every label a person reads is a :class:`LocalText` (both
languages); names, ids and engineers' words are data and shown as given. Builders
(:mod:`.build`) fill it from the case and the store, so nothing is typed twice.

>>> s = Section(LocalText("Work", "工作"), table=Table((LocalText("Who", "人员"),), (("li",),), EMPTY))
>>> s.table.rows[0][0]
'li'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from collector.reports.model import Customer, LocalText, SignOff

__all__ = ["EMPTY", "Cell", "Chart", "Fact", "Section", "ServiceRecord", "Table"]

Cell = str | LocalText
"""A table cell or a fact's value: data (shown as given) or prose (in the record's language)."""

EMPTY = LocalText("None in this period.", "本期无。")


@dataclass(frozen=True, slots=True)
class Fact:
    label: LocalText
    value: Cell


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[LocalText, ...]
    rows: tuple[tuple[Cell, ...], ...]
    empty: LocalText = EMPTY
    """Shown instead of an empty table."""

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a row has {len(row)} cells for {len(self.columns)} columns")


@dataclass(frozen=True, slots=True)
class Chart:
    """Bars (label, value): drawn by :func:`collector.reports.charts.bar_chart`."""

    title: LocalText
    bars: tuple[tuple[str, float], ...]
    maximum: float | None = None
    """The axis' end (default: the largest bar)."""


@dataclass(frozen=True, slots=True)
class Section:
    title: LocalText
    text: tuple[LocalText, ...] = ()
    facts: tuple[Fact, ...] = ()
    table: Table | None = None
    charts: tuple[Chart, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    kind: str
    """One of ``emergency``, ``repair``, ``routine``, ``upgrade``, ``analysis``."""
    subject: str
    """A case id (``C-acme-12``) or a period (``2026-11``, ``2026-Q4``)."""
    customer: Customer
    signoff: SignOff
    generated_at: datetime
    facts: tuple[Fact, ...]
    sections: tuple[Section, ...]
    summary: LocalText | None = None
    extra: dict[str, object] = field(default_factory=dict, hash=False, compare=False)
    """Machine-readable figures for the JSON form (counts, minutes, rates)."""
