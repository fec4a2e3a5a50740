"""The agent's YAML configuration, validated into typed models before anything runs.

Every model forbids unknown keys. :func:`load_config` reads a file, validates the
structure, resolves each check (its name against the registry, its ``params``
against that check's own params model) and returns a :class:`LoadedConfig`, or
raises one :class:`ConfigError` listing every problem with the file, the dotted
path, the offending value and what was expected. Secret values never appear in an
error message.

>>> loaded = load_text("agent: {id: web-1, interval_s: 30}\\n", "inline.yaml")
>>> loaded.config.agent.id, loaded.config.agent.effective_jitter_s
('web-1', 3.0)
>>> try:
...     load_text("agent: {intervall_s: 30}\\n", "inline.yaml")
... except ConfigError as err:
...     print(err)
inline.yaml: agent.intervall_s: unknown key; did you mean 'interval_s'?
"""

from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.sessions.settings import SessionsConfig
from checks.api import Check, CheckParams
from checks.application.version import ProductSpec
from diagconfig import ConfigError, ConfigIssue, issues_from, parse_yaml, read_config_file, show_value

__all__ = [
    "DEFAULT_STATE_DIR",
    "AgentConfig",
    "AgentSection",
    "CheckConfig",
    "CheckPlan",
    "CollectorConfig",
    "ConfigError",
    "ConfigIssue",
    "InventoryConfig",
    "LoadedConfig",
    "ProductSpec",
    "SessionsConfig",
    "SpoolConfig",
    "TLSConfig",
    "default_config",
    "load_config",
    "load_text",
    "resolve_checks",
]

DEFAULT_STATE_DIR = Path("/var/lib/diag-agent")
MIB = 1024 * 1024

_SECRET_PART = re.compile(r"(token|password|passwd|secret|credential|api_key|private_key)", re.IGNORECASE)
"""A path component matching this carries a secret: its value is never echoed."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSection(_Model):
    """Who this agent is and how often it works."""

    id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=253)
    """Stable agent identity; the collector keys sequence numbers on it. Default: hostname."""
    customer: str | None = None
    """Customer this host belongs to (the collector binds it to the enrollment token)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free-form labels for inspection plans' host selectors (``role: db``)."""
    state_dir: Path = DEFAULT_STATE_DIR
    """Where the spool and the checks' persistent state live."""
    interval_s: float = Field(default=60.0, gt=0, le=86400)
    """Base cycle. Checks declare their interval relative to a 60 s base: at 30 s every
    check runs twice as often as declared. A per-check ``interval_s`` overrides this."""
    jitter_s: float | None = Field(default=None, ge=0)
    """Spread of check start times within a cycle (default: 10% of ``interval_s``)."""
    max_workers: int = Field(default=4, ge=1, le=64)
    """Checks running at the same time (threads, not counting abandoned hung ones)."""

    @field_validator("id")
    @classmethod
    def _id_is_printable(cls, value: str) -> str:
        if not value.isprintable() or value.strip() != value:
            raise ValueError("agent id must be printable with no surrounding whitespace")
        return value

    @property
    def effective_jitter_s(self) -> float:
        """``jitter_s`` if set, else 10% of the interval; never more than the interval."""
        jitter = self.interval_s * 0.1 if self.jitter_s is None else self.jitter_s
        return min(jitter, self.interval_s)


class TLSConfig(_Model):
    """TLS towards the collector (mTLS when cert and key are given)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    """Name to verify in the collector's certificate when it differs from the address."""

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (client certificate)")
        return self


_ADDRESS_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+):(\d{1,5})$")


def parse_address(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) and validate the port.

    >>> parse_address("127.0.0.1:50051")
    ('127.0.0.1', 50051)
    >>> parse_address("[::1]:443")
    ('::1', 443)
    """
    match = _ADDRESS_RE.match(value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError("expected host:port with a port 1-65535")
    return match.group(1).strip("[]"), int(match.group(2))


class CollectorConfig(_Model):
    """Where results are streamed (used by the streamer; the spool works without it)."""

    address: str | None = None
    token: SecretStr | None = None
    """Per-agent enrollment token. Never logged or printed."""
    tls: TLSConfig | None = None

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value


class SpoolConfig(_Model):
    """The on-disk store-and-forward queue."""

    max_bytes: int = Field(default=256 * MIB, ge=64 * 1024)
    """Bound on spooled data; when full the oldest entries are dropped and reported as a gap."""
    path: Path | None = None
    """SQLite file (default ``<state_dir>/spool.db``)."""


class CheckConfig(_Model):
    """Overrides for one check. Mentioning a check enables it unless ``enabled: false``."""

    enabled: bool = True
    interval_s: float | None = Field(default=None, gt=0, le=86400)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    params: dict[str, Any] = Field(default_factory=dict)
    """Validated by the check's own params model (see :func:`resolve_checks`)."""


MAX_PRODUCTS = 100
"""Products one inventory reports; each may run a command, so the list is bounded."""


class InventoryConfig(_Model):
    """What the inventory reports besides hardware and OS facts."""

    products: list[ProductSpec] = Field(default_factory=list, max_length=MAX_PRODUCTS)
    """Installed products whose version is reported. The model is the one
    ``application.version`` uses for its ``products`` param, so an entry copied between
    the two sections means the same thing."""

    @field_validator("products")
    @classmethod
    def _unique_names(cls, value: list[ProductSpec]) -> list[ProductSpec]:
        # The collector keys versions (and upgrade records) on the product name.
        seen: set[str] = set()
        for product in value:
            if product.name in seen:
                raise ValueError(f"product name {product.name!r} is listed twice; names must be unique")
            seen.add(product.name)
        return value


class AgentConfig(_Model):
    """The whole file. Every section is optional; an empty file is a valid config."""

    agent: AgentSection = Field(default_factory=AgentSection)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    checks: dict[str, CheckConfig] = Field(default_factory=dict)
    inventory: InventoryConfig = Field(default_factory=InventoryConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    """Remote sessions (off by default; see docs/agent.md, "Remote sessions")."""

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, value: Any) -> Any:
        # A section whose keys are all commented out parses as null: same as absent.
        if isinstance(value, Mapping):
            return {k: v for k, v in value.items() if v is not None}
        return value

    @field_validator("checks", mode="before")
    @classmethod
    def _empty_check_blocks(cls, value: Any) -> Any:
        # ``host.load:`` with nothing under it means "enabled, defaults".
        if isinstance(value, Mapping):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @property
    def spool_path(self) -> Path:
        """``spool.path`` or ``<state_dir>/spool.db``."""
        return self.spool.path or self.agent.state_dir / "spool.db"


# --- resolved checks ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """One check as the agent will run it: declaration, validated params, timing."""

    check: Check[Any, Any]
    params: CheckParams
    enabled: bool
    interval_s: float
    timeout_s: float

    @property
    def name(self) -> str:
        """The check's name (``host.load``)."""
        return self.check.name


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config with every check resolved (disabled ones included)."""

    config: AgentConfig
    plans: tuple[CheckPlan, ...]
    source: str

    @property
    def enabled_plans(self) -> tuple[CheckPlan, ...]:
        """The plans the agent runs, in registry order."""
        return tuple(p for p in self.plans if p.enabled)

    def secrets(self) -> tuple[str, ...]:
        """Secret values to scrub from any text the agent emits."""
        token = self.config.collector.token
        return (token.get_secret_value(),) if token is not None and token.get_secret_value() else ()


# --- loading --------------------------------------------------------------------------


def load_config(
    path: str | Path,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    registry: Mapping[str, Check[Any, Any]] | None = None,
) -> LoadedConfig:
    """Read, validate and resolve the config file at ``path``.

    ``overrides`` (``{"agent": {"interval_s": 5}}``) replace values of the file, as the
    ``run`` command's flags do. ``registry`` defaults to :func:`checks.registry.all_checks`.
    Raises :class:`ConfigError`.
    """
    return load_text(read_config_file(path), str(path), overrides, registry)


def load_text(
    text: str,
    source: str = "<config>",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    registry: Mapping[str, Check[Any, Any]] | None = None,
) -> LoadedConfig:
    """Like :func:`load_config` for YAML text already read; ``source`` names it in errors."""
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            source, [ConfigIssue("", "expected a mapping of sections at the top level", show_value(raw))]
        )
    for section, values in (overrides or {}).items():
        current = raw.get(section)
        merged = dict(current) if isinstance(current, dict) else {}
        merged.update(values)
        raw[section] = merged
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        # No value under an unknown key: a misspelt ``tokn:`` holds the token.
        issues = issues_from(exc, AgentConfig, (), secret=_SECRET_PART, show_unknown_value=False)
        if not any(issue.path.startswith("checks") for issue in issues):
            # Report check names and params in the same pass when that section is sound.
            try:
                resolve_checks(AgentConfig.model_validate({"checks": raw.get("checks")}), source, registry)
            except ConfigError as check_errors:
                issues.extend(check_errors.issues)
        raise ConfigError(source, issues) from None
    plans = resolve_checks(config, source, registry)
    return LoadedConfig(config=config, plans=plans, source=source)


def default_config(registry: Mapping[str, Check[Any, Any]] | None = None) -> LoadedConfig:
    """Built-in defaults: every default-enabled check with its default params."""
    config = AgentConfig()
    return LoadedConfig(
        config=config, plans=resolve_checks(config, "<defaults>", registry), source="<defaults>"
    )


def resolve_checks(
    config: AgentConfig, source: str, registry: Mapping[str, Check[Any, Any]] | None = None
) -> tuple[CheckPlan, ...]:
    """Match ``config.checks`` against the registry and validate each check's params.

    Returns a plan for every registered check (registry order), enabled or not.
    Raises :class:`ConfigError` naming unknown checks (with close matches) and every
    bad param by its full dotted path.
    """
    if registry is None:
        from checks.registry import all_checks

        registry = all_checks()
    issues: list[ConfigIssue] = []
    for name in config.checks:
        if name not in registry:
            issues.append(ConfigIssue(f"checks.{name}", _unknown_check_message(name, registry)))
    scale = config.agent.interval_s / 60.0
    plans: list[CheckPlan] = []
    for name, check in registry.items():
        entry = config.checks.get(name)
        try:
            # Defaults need no validation: checks not configured never build their validator.
            if entry and entry.params:
                params = check.params.model_validate(entry.params)
            else:
                params = check.params.defaults()
        except ValidationError as exc:
            where = ("checks", name, "params")
            found = issues_from(exc, check.params, where, secret=_SECRET_PART, show_unknown_value=False)
            issues.extend(found)
            continue
        interval = entry.interval_s if entry and entry.interval_s else check.interval_s * scale
        timeout = entry.timeout_s if entry and entry.timeout_s else check.timeout_s
        enabled = entry.enabled if entry is not None else check.default_enabled
        plans.append(CheckPlan(check, params, enabled, interval, timeout))
    if issues:
        raise ConfigError(source, issues)
    return tuple(plans)


def _unknown_check_message(name: str, registry: Mapping[str, Check[Any, Any]]) -> str:
    close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.6)
    if close:
        return f"unknown check {name!r}; did you mean {', '.join(close)}?"
    layer = name.split(".", 1)[0]
    same_layer = [n for n in registry if n.startswith(layer + ".")]
    known = same_layer or list(registry)
    shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
    return f"unknown check {name!r}; known checks: {shown} (list them all: diag-agent checks --format json)"
