"""Refuse a PDF whose text would show as empty boxes (missing glyphs).

On a machine without a CJK font, Pango finds no font for Chinese characters and
WeasyPrint draws ``.notdef`` boxes for them: the PDF "renders", but the customer's
service record is unreadable. We would rather fail the render, say what to install,
and store nothing, so that the report can be asked for again once the fonts are there
(``diagctl reports render ID``).

Why a check and not a bundled font: the smallest Simplified Chinese face that covers
what customers type (Noto Sans CJK SC, OFL) is about 16 MB per weight, which every
agent-side install would carry for a collector-only feature; a subset for our own
templates would not cover customer text (host names, case notes, plan titles), so the
coverage check is needed either way. The prerequisite is one system package, named in
the error and the README.

The check reads what WeasyPrint recorded while drawing (each embedded font's
``missing`` code points, set when Pango returned an unknown glyph), not a guess from
fontconfig: it is exactly the set of characters that came out as boxes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

__all__ = ["FONT_HINT", "MissingGlyphsError", "missing_code_points"]

#: What to install, per platform family; named in the error.
FONT_HINT = (
    "install a CJK font and render the report again: Debian/Ubuntu `apt-get install fonts-noto-cjk`, "
    "Fedora/RHEL `dnf install google-noto-sans-cjk-fonts`, Alpine `apk add font-noto-cjk`"
)

_SAMPLE = 8


class MissingGlyphsError(Exception):
    """No installed font has glyphs for some characters of the report."""

    def __init__(self, code_points: Iterable[int]) -> None:
        self.code_points = sorted(set(code_points))
        sample = ", ".join(f"{_show(cp)} (U+{cp:04X})" for cp in self.code_points[:_SAMPLE])
        more = len(self.code_points) - _SAMPLE
        extra = f" and {more} more" if more > 0 else ""
        super().__init__(
            f"the PDF would show {len(self.code_points)} character(s) as empty boxes because no "
            f"installed font has them: {sample}{extra}; the report was not stored; {FONT_HINT}"
        )


def _show(code_point: int) -> str:
    char = chr(code_point)
    # A control or unassigned character would garble the message: name it by number only.
    return f"'{char}'" if unicodedata.category(char)[0] in "LNPS" else "?"


def missing_code_points(document: Any) -> set[int]:
    """The code points drawn as ``.notdef`` in a rendered and written WeasyPrint document.

    WeasyPrint (>= 70) fills ``Font.missing`` (code point -> placeholder glyph id) while
    it draws the pages, so call this after ``document.write_pdf()``.
    """
    missing: set[int] = set()
    for font in document.fonts.values():
        if not hasattr(font, "missing"):  # an older WeasyPrint: it cannot tell, so we cannot check
            raise TypeError("this WeasyPrint does not record missing glyphs; remote-diag needs >= 70")
        missing.update(font.missing)
    return missing
