"""Config-file machinery shared by the agent and the collector.

A problem with a config file is a :class:`ConfigIssue`; :class:`ConfigError` carries
every issue of one file and renders one line per problem, as
``<source>: <dotted.path>: <message> (got <value>)``. :func:`parse_yaml` reads YAML
(rejecting duplicate keys unless told otherwise) and :func:`issues_from` turns a
pydantic ``ValidationError`` into issues with dotted paths, "did you mean"
suggestions and secret-free values. :func:`read_config_file` reads a file with a
size bound; :func:`parse_yaml` refuses documents that are too large, too deep or
that aliases would expand past a budget (:mod:`diagconfig.yaml_limits`), so a hostile
file costs a daemon a fraction of a second, never minutes or gigabytes. Only stdlib,
``yaml`` and ``pydantic`` are imported, so the agent's light commands stay light.

>>> print(ConfigError("a.yaml", [ConfigIssue("agent.id", "expected: a string", "3"),
...                              ConfigIssue("", "cannot read the config file")]))
a.yaml: agent.id: expected: a string (got 3)
a.yaml: cannot read the config file
>>> parse_yaml("a: 1\\na: 2\\n", "a.yaml")
Traceback (most recent call last):
...
diagconfig.ConfigError: a.yaml: YAML syntax error at line 2, column 1: found duplicate key 'a'
"""

from __future__ import annotations

import difflib
import re
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Union

import yaml
from pydantic import BaseModel, ValidationError

from diagconfig.yaml_limits import DEFAULT_LIMITS, FASTEST_SAFE_LOADER, YamlLimits, check_shape, read_bounded

__all__ = [
    "MAX_ISSUES_SHOWN",
    "ConfigError",
    "ConfigIssue",
    "YamlLimits",
    "issues_from",
    "load_yaml_file",
    "looks_secret",
    "model_at",
    "parse_yaml",
    "read_config_file",
    "show_value",
]

MAX_ISSUES_SHOWN = 20
"""Problems a :class:`ConfigError` lists; the rest are counted ("... and N more")."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem: where (dotted path, or line:column for syntax), what, and the bad value."""

    path: str
    message: str
    value: str | None = None

    def render(self, source: str) -> str:
        """One line: ``<source>: <path>: <message> (got <value>)``.

        >>> ConfigIssue("grpc.listen", "expected host:port", "'x'").render("c.yaml")
        "c.yaml: grpc.listen: expected host:port (got 'x')"
        >>> ConfigIssue("", "expected a mapping").render("c.yaml")
        'c.yaml: expected a mapping'
        """
        got = f" (got {self.value})" if self.value is not None else ""
        where = f"{source}: {self.path}: " if self.path else f"{source}: "
        return f"{where}{self.message}{got}"


class ConfigError(Exception):
    """The config is unusable; ``str()`` lists its problems, one per line.

    ``issues`` holds them all; ``str()`` shows the first :data:`MAX_ISSUES_SHOWN` and
    counts the rest, so a file with 400,000 bad keys is 21 lines, not 400,000.

    >>> print(ConfigError("a.yaml", [ConfigIssue(f"k{i}", "unknown key") for i in range(22)]))
    ... # doctest: +ELLIPSIS
    a.yaml: k0: unknown key
    ...
    a.yaml: k19: unknown key
    a.yaml: ... and 2 more problems
    """

    exit_code: ClassVar[int] = 2
    """Status a command exits with when its config is unusable."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        lines = [issue.render(source) for issue in self.issues[:MAX_ISSUES_SHOWN]]
        hidden = len(self.issues) - MAX_ISSUES_SHOWN
        if hidden > 0:
            lines.append(f"{source}: ... and {hidden} more problem{'s' if hidden > 1 else ''}")
        super().__init__("\n".join(lines))


# --- YAML -----------------------------------------------------------------------------


class _StrictLoader(FASTEST_SAFE_LOADER):  # type: ignore[valid-type,misc]
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


class _LastKeyWinsLoader(FASTEST_SAFE_LOADER):  # type: ignore[valid-type,misc]
    """SafeLoader as PyYAML has it: a duplicate key keeps its last value."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, typing.Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_config_file(path: str | Path, what: str = "config file", limits: YamlLimits = DEFAULT_LIMITS) -> str:
    """The text of ``path`` (UTF-8), at most ``limits.max_bytes`` of it.

    Any problem raises :class:`ConfigError` naming the file: ``cannot read the
    <what>: <reason>``.
    """
    source = str(path)
    try:
        return read_bounded(path, limits.max_bytes).decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start})"
    except ValueError as exc:  # too large
        reason = str(exc)
    raise ConfigError(source, [ConfigIssue("", f"cannot read the {what}: {reason}")]) from None


def load_yaml_file(
    path: str | Path,
    what: str = "config file",
    *,
    allow_duplicate_keys: bool = False,
    limits: YamlLimits = DEFAULT_LIMITS,
) -> Any:
    """:func:`read_config_file` then :func:`parse_yaml`: the one way a file of YAML is read."""
    text = read_config_file(path, what, limits)
    return parse_yaml(text, str(path), allow_duplicate_keys=allow_duplicate_keys, limits=limits)


def parse_yaml(
    text: str, source: str, *, allow_duplicate_keys: bool = False, limits: YamlLimits = DEFAULT_LIMITS
) -> Any:
    """Parse ``text``; any YAML problem raises :class:`ConfigError` naming ``source``.

    A syntax error names its line and column but never quotes the line (it may hold
    a token). Duplicate keys are errors unless ``allow_duplicate_keys`` (the last wins).
    A document larger, deeper or (aliases expanded) bigger than ``limits`` is refused
    before it is built.

    >>> parse_yaml("a: 1\\na: 2\\n", "c.yaml", allow_duplicate_keys=True)
    {'a': 2}
    >>> parse_yaml("a: [1\\n", "c.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    diagconfig.ConfigError: c.yaml: YAML syntax error at line 2, column 1: did not find expected ',' or ']'
    >>> bomb = "a: &a [x, x]\\nb: &b [*a, *a]\\nc: [*b, *b]\\n"
    >>> parse_yaml(bomb, "c.yaml", limits=YamlLimits(max_values=10))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    diagconfig.ConfigError: c.yaml: refused: aliases (*name) expand the document to more than 10 values ...
    """
    try:
        problem = check_shape(text, limits)
        if problem is not None:
            raise ConfigError(source, [ConfigIssue("", f"refused: {problem}")])
        loader = _LastKeyWinsLoader if allow_duplicate_keys else _StrictLoader
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = exc.problem or exc.context or "invalid YAML"
        if "maximum nesting depth" in what:  # libyaml's own bound (1,000), met while scanning ahead
            issue = ConfigIssue("", f"refused: nested more than {limits.max_depth} levels deep (at {where})")
            raise ConfigError(source, [issue]) from None
        raise ConfigError(source, [ConfigIssue("", f"YAML syntax error at {where}: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigIssue("", f"YAML error: {type(exc).__name__}")]) from None
    except RecursionError:  # the depth bound makes this unreachable; never a traceback anyway
        raise ConfigError(source, [ConfigIssue("", "refused: nested too deeply")]) from None
    except ValueError as exc:  # a scalar PyYAML cannot build, e.g. the date 2024-13-01
        raise ConfigError(source, [ConfigIssue("", f"invalid value: {exc}")]) from None


# --- pydantic errors → issues ---------------------------------------------------------


def issues_from(
    exc: ValidationError,
    root: type[BaseModel],
    prefix: tuple[str | int, ...] = (),
    *,
    secret: re.Pattern[str],
    show_unknown_value: bool = True,
) -> list[ConfigIssue]:
    """One :class:`ConfigIssue` per error of ``exc`` (raised validating ``root``).

    Paths are dotted and start with ``prefix``; an unknown key gets the closest valid
    key or the list of valid ones; a value under a path component matching ``secret``
    is shown as ``<redacted>``, and so is any value or key that looks like a secret
    (:func:`looks_secret`). ``show_unknown_value=False`` leaves the value off
    unknown-key issues.
    """
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        full = prefix + loc
        kind = error["type"]
        if len(issues) >= MAX_ISSUES_SHOWN:
            # Counted, never shown: skip the "did you mean" search and the value.
            issues.append(ConfigIssue(".".join(str(part) for part in full), kind))
            continue
        is_secret = any(secret.search(str(part)) for part in full)
        if kind == "missing" or (kind == "extra_forbidden" and not show_unknown_value):
            value = None
        else:
            value = "<redacted>" if is_secret else show_value(error["input"])
        # A key can be a pasted token too (``collector: {dga_...: x}``).
        path = ".".join("<redacted>" if looks_secret(str(part)) else str(part) for part in full)
        issues.append(ConfigIssue(path, _explain(error, root, loc), value))
    return issues


def _explain(error: Any, root: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        key = str(loc[-1]) if loc else ""
        if model is None:
            return "unknown key"
        valid = sorted(model.model_fields)
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        if close:
            return f"unknown key; did you mean {close[0]!r}?"
        return f"unknown key; valid keys here: {', '.join(valid) or '(none)'}"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    # pydantic's "Value error, ..." prefix says nothing to a reader of a config file.
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if not message:
        return "invalid value"
    message = message[0].lower() + message[1:]
    return message if message.startswith("expected") else f"expected: {message}"


def model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class whose field set applies at ``loc`` (None if not a model there).

    Follows model fields, ``X | None``, dict values and list items.
    """
    current: Any = root
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (dict, Mapping) and len(args) == 2:
            current = args[1]
        elif origin in (list, tuple, Sequence) and args:
            current = args[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X`` (the only unions our models use)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


_SECRET_VALUE = re.compile(
    r"\b(?:dga|dgt)_[A-Za-z0-9_-]{8,}"  # our own agent and API tokens
    r"|-----BEGIN [A-Z ]*PRIVATE KEY"  # PEM keys
    r"|://[^/\s:@]+:[^/\s@]+@"  # credentials in a URL
    r"|(?=[\w+=-]*\d)(?=[\w+=-]*[A-Za-z])[\w+=-]{24,}"  # long runs of letters and digits: keys, hashes
)
"""What a value that looks like a secret contains; such a value is never echoed."""

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 200
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 8
_REPR.maxlevel = 3


def looks_secret(text: str) -> bool:
    """True when ``text`` holds something that looks like a token, key or password.

    >>> looks_secret("dga_Zm9vYmFyYmF6"), looks_secret("postgresql://u:pw@db/x")
    (True, True)
    >>> looks_secret("127.0.0.1:50051"), looks_secret("/var/lib/diag-agent/spool.db")
    (False, False)
    """
    return _SECRET_VALUE.search(text) is not None


def show_value(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters; ``<redacted>`` if it looks secret.

    The repr is bounded (a few items per level, a few levels), so showing a huge value
    costs nothing.

    >>> show_value("x" * 100, limit=10)
    "'xxxxxx..."
    >>> show_value({"tokn": "dga_0123456789abcdef"})
    '<redacted>'
    """
    text = _REPR.repr(value)
    if looks_secret(text):
        return "<redacted>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
