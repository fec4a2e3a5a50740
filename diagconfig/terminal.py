"""Text for people's terminals: control characters made visible, columns by display width.

Threat model: what the CLIs and logs print comes in good part from agents (check
summaries, labels, product names, host names) and, through the collector, from
anyone holding an agent token. Printed raw, ``ESC ] 0 ; ... BEL`` retitles the
engineer's terminal, ``ESC ] 52 ; c ; ...`` writes their clipboard, CSI sequences
move the cursor, clear the screen or hide text, and bidi overrides make text read
differently from what it is. So every human output of ``diag-agent``, ``diagctl`` and
the daemons' log lines goes through :func:`terminal_text` (free text, line breaks
kept) or :func:`cell_text` (one table cell or log message, nothing kept), which show
each control character as a visible escape (``\\x1b``), never strip it silently: the
engineer sees that something was there. JSON output is left exact (``json`` escapes
C0 controls itself).

Tables are laid out by :func:`display_width`: a CJK character takes two columns, a
combining mark none, so Chinese text lines up (``len()`` counts characters, not
columns). The standard library's ``unicodedata`` is enough for that; no wcwidth.

>>> cell_text("load ok\\x1b]0;pwned\\x07")
'load ok\\\\x1b]0;pwned\\\\x07'
>>> display_width("磁盘 ok"), len("磁盘 ok")
(7, 5)
>>> print("\\n".join(table_lines(("主机", "STATE"), [("数据库服务器", "OK"), ("web1", "CRIT")])))
主机          STATE
数据库服务器  OK
web1          CRIT
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Collection, Sequence

__all__ = [
    "TerminalFormatter",
    "cell_text",
    "display_width",
    "pad",
    "table_lines",
    "terminal_text",
]

_INVISIBLE_FORMAT = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # bidi marks, overrides
    "\u2028\u2029"  # line and paragraph separators: a line break to a terminal or a log reader
)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _clean(text: str, keep: str) -> str:
    if text.isprintable():  # the common case: nothing to do (isprintable is False for all of ours)
        return text
    out = []
    for ch in text:
        if ch in keep:
            out.append(ch)
        elif ch in _INVISIBLE_FORMAT or unicodedata.category(ch) == "Cc":
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def terminal_text(text: str) -> str:
    """``text`` with every control character but the line break shown as an escape.

    >>> terminal_text("line 1\\nline 2\\x1b[2J\\u202e")
    'line 1\\nline 2\\\\x1b[2J\\\\u202e'
    """
    return _clean(text, "\n")


def cell_text(text: str) -> str:
    """``text`` as one line: every control character, line breaks too, as an escape.

    >>> cell_text("a\\tb\\nc\\x9b31m")
    'a\\\\x09b\\\\x0ac\\\\x9b31m'
    """
    return _clean(text, "")


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (CJK) characters 2, combining marks 0.

    >>> display_width("abc"), display_width("巡检报告"), display_width("e\\u0301")
    (3, 8, 1)
    """
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` display columns (``str.ljust`` by width).

    >>> pad("中文", 6) + "|", pad("ab", 4, right=True)
    ('中文  |', '  ab')
    """
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def table_lines(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()
) -> list[str]:
    """The lines of an aligned table; each cell made safe with :func:`cell_text`.

    Columns are two spaces apart, widths measured by :func:`display_width`; the
    columns whose index is in ``right`` are right-aligned. Trailing spaces are cut.
    """
    cells = [[cell_text(str(c)) for c in row] for row in [headers, *rows]]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(
            pad(c, w, right=i in right) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]


class TerminalFormatter(logging.Formatter):
    """A log formatter whose lines carry no terminal control: the message is one line
    (:func:`cell_text`: a hostile value cannot fake a log line either) and the
    traceback keeps its line breaks only (:func:`terminal_text`)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = cell_text(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return terminal_text(super().format(record))
