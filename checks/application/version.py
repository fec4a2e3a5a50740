"""application.version: the installed version of each configured product, and its changes.

A version comes from a command's output (``["/opt/app/bin/app", "--version"]``, stdout
and stderr both searched, since ``java -version`` prints to stderr) or from a file
(``/opt/app/VERSION``), picked out by a regex whose one group is the version. A change
since the last run is a WARN ``VERSION_CHANGED`` result naming old and new; the
collector turns it into an upgrade record (产品升级记录). :func:`discover_version` is
shared with the inventory collector.

Sample of what :func:`collect_version` returns::

    VersionSection(found=(ProductVersion(name='python', version='3.11.2', reason=None),
                          ProductVersion(name='app', version=None,
                                         reason='/opt/app/VERSION does not exist'),))
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from checks.api import (
    Check,
    CheckParams,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
)
from checks.probe import CommandTimeout, Probe

__all__ = [
    "VERSION",
    "ProductSpec",
    "ProductVersion",
    "VersionParams",
    "VersionSection",
    "VersionUnknown",
    "collect_version",
    "discover_version",
    "evaluate_version",
]

MAX_FILE_BYTES = 64 * 1024
"""Bytes of a version file searched; version files are small."""
MAX_VERSION_CHARS = 64
"""A "version" longer than this is a regex matching too much; it is cut."""
DEFAULT_REGEX = r"(\d+(?:\.\d+)+)"
"""The version regex of a product that names none: the first dotted number."""
MAX_TIMEOUT_S = 60.0
"""Longest a version command may run; the inventory reads every product in one task."""


class VersionUnknown(Exception):
    """The version could not be found; ``reason`` says why (secret-free)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProductSpec(BaseModel):
    """How to find one product's version: a command or a file, and a regex.

    >>> ProductSpec(name="py", command=["python3", "--version"], regex=r"Python (\\S+)").timeout_s
    5.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """Product name, the ``product`` label and result item."""
    command: tuple[str, ...] | None = Field(default=None, min_length=1)
    """argv to run without a shell; stdout and stderr are searched."""
    file: str | None = None
    """Absolute path of a file holding the version."""
    regex: str = DEFAULT_REGEX
    """Regular expression with exactly one group: the version (default: the first
    dotted number, such as ``7.4.2``)."""
    timeout_s: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT_S)
    """The command is killed after this many seconds."""

    @field_validator("regex")
    @classmethod
    def _one_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if compiled.groups != 1:
            raise ValueError(f"the regex needs exactly one group (the version), it has {compiled.groups}")
        return value

    @field_validator("file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("file must be an absolute path")
        return value

    @model_validator(mode="after")
    def _command_or_file(self) -> ProductSpec:
        if (self.command is None) == (self.file is None):
            raise ValueError("give exactly one of 'command' or 'file'")
        return self


class VersionParams(CheckParams):
    products: tuple[ProductSpec, ...] = ()
    """Products whose version is tracked."""


@dataclass(frozen=True, slots=True)
class ProductVersion:
    name: str
    version: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VersionSection:
    found: tuple[ProductVersion, ...]


def discover_version(probe: Probe, product: ProductSpec, timeout_s: float | None = None) -> str:
    """The product's version, or :class:`VersionUnknown` with a reason.

    ``timeout_s`` (default: the product's own) bounds a version command, so a caller
    with a budget for several products can give the last ones what is left.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "VERSION").write_text("release 4.2.1-lts\\n")
    >>> discover_version(Probe(root=root), ProductSpec(name="a", file="/VERSION", regex=r"release (\\S+)"))
    '4.2.1-lts'
    """
    pattern = re.compile(product.regex)
    if product.file is not None:
        try:
            text = probe.read_bytes(product.file, MAX_FILE_BYTES).decode("utf-8", errors="replace")
        except FileNotFoundError:
            raise VersionUnknown(f"{product.file} does not exist") from None
        except PermissionError:
            raise VersionUnknown(f"{product.file} is not readable (permission denied)") from None
        except IsADirectoryError:
            raise VersionUnknown(f"{product.file} is a directory") from None
        except OSError as exc:  # ELOOP, EIO, ENAMETOOLONG...: the file is there but unusable
            reason = exc.strerror or type(exc).__name__
            raise VersionUnknown(f"cannot read {product.file}: {reason}") from None
        except ValueError:  # a NUL byte in the path
            raise VersionUnknown("the file path is not usable (it holds a NUL byte)") from None
        source = product.file
    elif product.command is not None:
        limit = product.timeout_s if timeout_s is None else min(timeout_s, product.timeout_s)
        try:
            done = probe.run(product.command, timeout_s=limit)
        except CommandTimeout:
            raise VersionUnknown(f"{product.command[0]} did not finish within {limit:.3g} s") from None
        except OSError as exc:
            # Missing, not executable, exec format error: all say "cannot run it here".
            raise VersionUnknown(
                f"cannot run {product.command[0]}: {exc.strerror or type(exc).__name__}"
            ) from None
        except ValueError:  # a NUL byte in an argument: nothing to run
            raise VersionUnknown(f"cannot run {product.command[0]!r}: an argument holds a NUL byte") from None
        text = done.stdout + "\n" + done.stderr
        source = f"the output of {product.command[0]}"
        if done.returncode != 0:
            source += f" (exit code {done.returncode})"
    else:
        raise VersionUnknown("neither a command nor a file is configured")
    match = pattern.search(text)
    if match is None or not match.group(1):
        raise VersionUnknown(f"no match for the version regex in {source}")
    return match.group(1).strip()[:MAX_VERSION_CHARS]


def collect_version(probe: Probe, params: VersionParams) -> VersionSection:
    if not params.products:
        raise SkipCheck("no products configured")
    found: list[ProductVersion] = []
    for product in params.products:
        try:
            found.append(ProductVersion(product.name, discover_version(probe, product)))
        except VersionUnknown as exc:
            found.append(ProductVersion(product.name, None, exc.reason))
    return VersionSection(tuple(found))


def evaluate_version(
    params: VersionParams, section: VersionSection, store: ValueStore
) -> Iterator[Result | Metric]:
    known: dict[str, str] = dict(store.get("versions") or {})
    for product in section.found:
        name = product.name
        if product.version is None:
            last = f" (last known: {known[name]})" if name in known else ""
            yield Result(
                Severity.UNKNOWN, "VERSION_UNKNOWN", f"Version not found: {product.reason}{last}", name
            )
            continue
        old = known.get(name)
        known[name] = product.version
        if old is not None and old != product.version:
            yield Result(
                Severity.WARN,
                "VERSION_CHANGED",
                f"Version changed: {old} → {product.version}",
                name,
                f"old={old} new={product.version}",
            )
        else:
            yield Result(Severity.OK, "OK", f"Version {product.version}", name)
        yield Metric("app_version_info", 1, Unit.INFO, {"product": name, "version": product.version})
    # Products no longer configured are forgotten, so the store does not grow forever.
    configured = {p.name for p in params.products}
    store["versions"] = {k: v for k, v in sorted(known.items()) if k in configured}


VERSION = Check(
    name="application.version",
    layer=Layer.APPLICATION,
    summary="Installed product versions and version changes",
    collect=collect_version,
    evaluate=evaluate_version,
    params=VersionParams,
    keys=("VERSION_CHANGED", "VERSION_UNKNOWN"),
    metrics=(
        MetricSpec(
            "app_version_info",
            Unit.INFO,
            "Installed version of a product (always 1; the labels carry the version)",
            labels=("product", "version"),
        ),
    ),
    interval_s=300,
    timeout_s=30,
    blocking=True,
)
