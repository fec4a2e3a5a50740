"""Bounds on a YAML document before anything is built from it: size, depth, expansion.

Config, plan and window files are read by daemons, and a small hostile file can cost
them minutes and gigabytes: nested aliases (``&a [x, x]``, ``&b [*a, *a]``, ...) expand
exponentially once a validator walks them, a document nested 100,000 deep ends in a
``RecursionError``. :func:`check_shape` walks the parser's events (libyaml's C parser
when PyYAML has it: about 0.1 s per MiB) and stops at the first bound crossed, before
a single node is composed, so any answer costs at most one bounded pass.

>>> check_shape("a: [1, 2]\\nb: {c: 3}\\n", YamlLimits())
>>> check_shape("a: &x [1, 2]\\nb: *x\\n", YamlLimits(max_values=6))
'aliases (*name) expand the document to more than 6 values (at line 2, column 4)'
>>> check_shape("[[[1]]]", YamlLimits(max_depth=2))
'nested more than 2 levels deep (at line 1, column 3)'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["FASTEST_SAFE_LOADER", "YamlLimits", "check_shape", "read_bounded"]

FASTEST_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (30 times faster), else PyYAML's own."""


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """What one file may hold. The defaults are far above any real config, plan or
    window file and far below what would cost a daemon seconds or much memory."""

    max_bytes: int = 1024 * 1024
    """Size of the file."""
    max_depth: int = 50
    """Nesting of mappings and sequences."""
    max_values: int = 100_000
    """Scalars, mappings and sequences, each alias counted as the whole value it repeats."""


DEFAULT_LIMITS = YamlLimits()


def read_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of ``path``; :class:`ValueError` when it holds more than ``max_bytes``.

    Reads at most ``max_bytes + 1`` bytes, so ``/dev/zero`` or a 10 GB file costs
    nothing. OSError (missing, unreadable, a directory) propagates.
    """
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"the file is larger than {max_bytes:,} bytes")
    return data


def check_shape(text: str, limits: YamlLimits = DEFAULT_LIMITS) -> str | None:
    """None if ``text`` is within ``limits``, else what is wrong (one short phrase).

    Raises PyYAML's errors for a syntax error met on the way.
    """
    if len(text) > limits.max_bytes:  # characters: never more than the bytes they came from
        return f"the document is larger than {limits.max_bytes:,} bytes"
    values = 0
    sizes: dict[str, int] = {}
    """Anchor -> the number of values its node holds, aliases expanded."""
    open_nodes: list[tuple[str | None, int]] = []
    """Collections being parsed: (anchor, values counted before it)."""
    used_alias = False
    for event in yaml.parse(text, Loader=FASTEST_SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            anchor: str | None = event.anchor
            if anchor is None or anchor not in sizes:
                if any(open_anchor == anchor for open_anchor, _ in open_nodes):
                    return f"an alias repeats a value that contains it (*{anchor}, at {_where(event)})"
                continue  # undefined: the composer names it as a syntax error
            values += sizes[anchor]
            used_alias = True
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            values += 1
            open_nodes.append((event.anchor, values - 1))
            if len(open_nodes) > limits.max_depth:
                return f"nested more than {limits.max_depth} levels deep (at {_where(event)})"
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before = open_nodes.pop()
            if anchor:
                sizes[anchor] = values - before
        if values > limits.max_values:
            what = "aliases (*name) expand the document to" if used_alias else "the document holds"
            return f"{what} more than {limits.max_values:,} values (at {_where(event)})"
    return None


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
