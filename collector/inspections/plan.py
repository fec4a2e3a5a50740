"""Inspection plans (定期巡检): one YAML file per plan, validated like every config.

A plan says whose hosts are inspected, when, with which checks and thresholds, who
receives the report (巡检报告) and in which language::

    name: acme-monthly
    customer: acme
    timezone: Asia/Shanghai        # may be filled from the customer's settings
    schedule: "0 2 1 * *"          # cron, on the customer's wall clock
    hosts:                         # selector: every given part must match
      names: ["db*", web1]         # exact names or shell globs
      labels: {env: prod}          # every label must match (values may be globs)
      exclude: [db-test*]          # never selected
    layers: [host, storage]        # every default-enabled check of these layers ...
    checks:                        # ... plus these checks, with threshold overrides
      network.dns: {}
      storage.filesystem:
        params: {exclude_fstypes: ["nfs*"]}
    thresholds:                    # the report rules' history thresholds, per rule
      CPU_SATURATED: {warn: 70, crit: 90}
    recipients: [ops@acme.example]
    language: zh-CN                # en | zh-CN
    answer_deadline: 10m           # hosts silent for longer are listed as offline

With neither ``layers`` nor ``checks`` the plan runs every default-enabled check.
``checks`` may also be a plain list of names. A check's ``params`` are validated by
that check's own params model; an error names the file and the dotted path, exactly
as the agent's config does (``checks.storage.filesystem.params.exclude_fstypes``).
``thresholds`` overrides some fields of an inspection rule's thresholds (the rule's
typed model, :mod:`collector.inspections.rules.base`); an unknown rule or field is
refused with a suggestion (``thresholds.CPU_SATURATED.wran: unknown key; did you mean 'warn'?``).

>>> plan = parse_plan({"name": "p", "customer": "acme", "timezone": "UTC",
...                    "schedule": "@daily", "layers": ["storage"]}, "p.yaml")
>>> plan.check_names()[:2]
('storage.disk_io', 'storage.filesystem')
>>> parse_plan({"name": "p", "customer": "acme", "timezone": "UTC",  # doctest: +ELLIPSIS
...             "schedule": "@daily", "checks": ["storage.filesytem"]}, "p.yaml")
Traceback (most recent call last):
...
diagconfig.ConfigError: p.yaml: checks.storage.filesytem: unknown check 'storage.filesytem'; ...
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from collector.inspections.rules.base import Rule, Thresholds

from checks.api import Check, CheckParams, Layer
from collector.schedule.cron import CronSchedule, load_zone
from collector.schedule.windows import parse_duration
from diagconfig import ConfigError, ConfigIssue, load_yaml_file, show_value

__all__ = [
    "HostLike",
    "HostSelector",
    "InspectionPlan",
    "PlanCheck",
    "SelectorError",
    "load_plan",
    "parse_plan",
    "select_hosts",
]

Language = Literal["en", "zh-CN"]
MAX_DEADLINE = timedelta(hours=24)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_SECRET_PART = re.compile(r"(token|password|secret|key_file)", re.IGNORECASE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class HostSelector(_Model):
    """Which of the customer's hosts a plan inspects. Every part given must match."""

    names: tuple[str, ...] = ()
    """Host names or shell globs (``db*``); a host matches when any entry matches."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels the host must all carry; a value may be a glob (``{env: prod*}``)."""
    exclude: tuple[str, ...] = ()
    """Host names or globs never selected, whatever else matches."""

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether a host with ``name`` and ``labels`` is selected.

        >>> HostSelector(names=("db*",), labels={"env": "prod"}).matches("db1", {"env": "prod"})
        True
        >>> HostSelector(names=("db*",), exclude=("db1",)).matches("db1", {})
        False
        """
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude):
            return False
        if self.names and not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.names):
            return False
        for key, wanted in self.labels.items():
            value = labels.get(key)
            if value is None or not fnmatch.fnmatchcase(value, wanted):
                return False
        return True

    def describe(self) -> str:
        """A short human description (for error messages): ``names=db*; labels=env=prod``."""
        parts = []
        if self.names:
            parts.append("names=" + ",".join(self.names))
        if self.labels:
            parts.append("labels=" + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())))
        if self.exclude:
            parts.append("exclude=" + ",".join(self.exclude))
        return "; ".join(parts) or "all hosts"


class PlanCheck(_Model):
    """One check named by the plan, with its threshold overrides."""

    params: dict[str, Any] = Field(default_factory=dict)
    """Validated by the check's own params model; unset fields keep the agent's values."""


class InspectionPlan(_Model):
    """A validated plan. Build one with :func:`load_plan` or :func:`parse_plan`."""

    name: str
    """Plan name, unique per customer: lowercase letters, digits, ``-``, ``_``, ``.``."""
    customer: str
    """Customer slug (``acme``)."""
    timezone: str
    """IANA zone the schedule runs in: the customer's (filled from its settings if absent)."""
    schedule: str
    """Five-field cron expression or macro (``@monthly``), on the customer's wall clock."""
    hosts: HostSelector = Field(default_factory=HostSelector)
    layers: tuple[Layer, ...] = ()
    """Layers whose default-enabled checks run."""
    checks: dict[str, PlanCheck] = Field(default_factory=dict)
    """Checks to run in addition to ``layers``, by name, with threshold overrides."""
    thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Rule key -> fields of its thresholds to override (``{CPU_SATURATED: {warn: 70}}``)."""
    recipients: tuple[str, ...] = ()
    """E-mail addresses that receive the report."""
    language: Language = "en"
    """Report language: ``en`` or ``zh-CN``."""
    answer_deadline: timedelta = timedelta(minutes=5)
    """How long selected hosts have to answer; later ones are listed as offline (at most 24h)."""
    description: str = ""

    @field_validator("name", "customer")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "expected lowercase letters, digits, '-', '_' or '.' "
                "(at most 100, starting with a letter or digit)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        CronSchedule.parse(value)
        return value

    @field_validator("checks", mode="before")
    @classmethod
    def _list_of_names(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            if not all(isinstance(item, str) for item in value):
                raise ValueError("expected check names or a mapping of check name to {params: ...}")
            return {item: {} for item in value}
        if isinstance(value, dict):
            return {key: {} if item is None else item for key, item in value.items()}
        return value

    @field_validator("layers", mode="before")
    @classmethod
    def _layer_names(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            known = [layer.value for layer in Layer]
            for item in value:
                if item not in known:
                    raise ValueError(f"expected layer names ({', '.join(known)}), got {item!r}")
        return value

    @field_validator("recipients", mode="before")
    @classmethod
    def _emails(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            for item in value:
                if not isinstance(item, str) or not _EMAIL_RE.match(item):
                    raise ValueError(f"expected e-mail addresses such as ops@example.com, got {item!r}")
        return value

    @field_validator("answer_deadline", mode="before")
    @classmethod
    def _deadline(cls, value: object) -> timedelta:
        duration = parse_duration(value)
        if duration > MAX_DEADLINE:
            raise ValueError(f"expected at most 24h, got {value!r}")
        return duration

    def cron(self) -> CronSchedule:
        """The schedule, bound to the plan's time zone."""
        return CronSchedule.parse(self.schedule, tz=self.timezone)

    def check_names(self, registry: Mapping[str, Check[Any, Any]] | None = None) -> tuple[str, ...]:
        """Checks the plan runs, in registry order (layer, then name)."""
        registry = _registry(registry)
        if not self.layers and not self.checks:
            return tuple(name for name, check in registry.items() if check.default_enabled)
        return tuple(
            name
            for name, check in registry.items()
            if name in self.checks or (check.layer in self.layers and check.default_enabled)
        )

    def check_params(self, registry: Mapping[str, Check[Any, Any]] | None = None) -> dict[str, CheckParams]:
        """Validated params overrides per check (only checks the plan names with params)."""
        registry = _registry(registry)
        return {
            name: registry[name].params.model_validate(entry.params)
            for name, entry in self.checks.items()
            if entry.params
        }

    def rule_thresholds(self, rules: Mapping[str, Rule] | None = None) -> dict[str, Thresholds]:
        """The thresholds the plan overrides, by rule key (its fields over the rule's defaults).

        :func:`parse_plan` has validated them; rules missing from ``rules`` are skipped."""
        rules = _rules(rules)
        return {key: rules[key].override(values) for key, values in self.thresholds.items() if key in rules}


def _rules(rules: Mapping[str, Rule] | None) -> Mapping[str, Rule]:
    if rules is not None:
        return rules
    from collector.inspections.rules import RULES

    return RULES


def _registry(registry: Mapping[str, Check[Any, Any]] | None) -> Mapping[str, Check[Any, Any]]:
    if registry is not None:
        return registry
    from checks.registry import all_checks

    return all_checks()


# --------------------------------------------------------------------------- loading


def load_plan(
    path: str | Path,
    timezones: Mapping[str, str] | None = None,
    registry: Mapping[str, Check[Any, Any]] | None = None,
) -> InspectionPlan:
    """Read and validate one plan file; raise :class:`~collector.cli.config.ConfigError`.

    ``timezones`` (customer slug -> IANA zone, from the customers' settings) fills a
    plan without ``timezone``. Each problem is one line: ``<file>: <path>: <message>``.
    """
    raw = load_yaml_file(path, "plan file", allow_duplicate_keys=True)
    return parse_plan(raw, str(path), timezones, registry)


def parse_plan(
    data: object,
    source: str = "<plan>",
    timezones: Mapping[str, str] | None = None,
    registry: Mapping[str, Check[Any, Any]] | None = None,
) -> InspectionPlan:
    """Validate parsed YAML into a plan: structure, check names, then each check's params."""
    if not isinstance(data, dict):
        raise ConfigError(
            source, [ConfigIssue("", "expected a mapping (name, customer, schedule, ...)", show_value(data))]
        )
    raw = dict(data)
    if "timezone" not in raw and timezones and isinstance(raw.get("customer"), str):
        zone = timezones.get(raw["customer"])
        if zone is not None:
            raw["timezone"] = zone
    try:
        plan = InspectionPlan.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, _issues(exc, InspectionPlan, ())) from None
    registry = _registry(registry)
    issues: list[ConfigIssue] = []
    for name, entry in plan.checks.items():
        check = registry.get(name)
        if check is None:
            issues.append(ConfigIssue(f"checks.{name}", _unknown_check(name, registry)))
            continue
        try:
            check.params.model_validate(entry.params)
        except ValidationError as exc:
            issues.extend(_issues(exc, check.params, ("checks", name, "params")))
    issues.extend(_threshold_issues(plan, _rules(None)))
    if issues:
        raise ConfigError(source, issues)
    return plan


def _unknown_check(name: str, registry: Mapping[str, Check[Any, Any]]) -> str:
    close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.6)
    if close:
        return f"unknown check {name!r}; did you mean {', '.join(close)}?"
    layer = name.split(".", 1)[0]
    known = [n for n in registry if n.startswith(layer + ".")] or list(registry)
    shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
    return f"unknown check {name!r}; known checks: {shown}"


def _threshold_issues(plan: InspectionPlan, rules: Mapping[str, Rule]) -> list[ConfigIssue]:
    """Each override checked against its rule's thresholds model: the rule exists and has
    thresholds, every field is one of the model's, and the result validates."""
    issues: list[ConfigIssue] = []
    with_limits = sorted(key for key, r in rules.items() if r.thresholds is not None)
    for key, values in plan.thresholds.items():
        where = f"thresholds.{key}"
        rule = rules.get(key)
        if rule is None or rule.thresholds is None:
            close = difflib.get_close_matches(key, with_limits, n=3, cutoff=0.6)
            what = f"unknown rule {key!r}" if rule is None else f"rule {key!r} has no thresholds"
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"rules with thresholds: {', '.join(with_limits)}"
            )
            issues.append(ConfigIssue(where, f"{what}; {hint}"))
            continue
        try:
            rule.override(values)
        except ValidationError as exc:
            issues.extend(_issues(exc, type(rule.thresholds), ("thresholds", key)))
    return issues


def _issues(exc: ValidationError, root: type[BaseModel], prefix: tuple[str, ...]) -> list[ConfigIssue]:
    found = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        path = ".".join(prefix + loc)
        kind = error["type"]
        if kind == "missing":
            found.append(ConfigIssue(path, "required key is missing"))
            continue
        if kind == "extra_forbidden":
            valid = sorted(_fields_at(root, loc[:-1]))
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"valid keys here: {', '.join(valid) or '(none)'}"
            )
            found.append(ConfigIssue(path, f"unknown key; {hint}"))
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else "invalid value"
        if not message.startswith("expected"):
            message = f"expected: {message}"
        secret = any(_SECRET_PART.search(part) for part in prefix + loc)
        found.append(ConfigIssue(path, message, "<redacted>" if secret else show_value(error["input"])))
    return found


def _fields_at(root: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """Field names of the model found at ``loc`` below ``root`` (empty when none)."""
    model: type[BaseModel] = root
    index = 0
    while index < len(loc):
        part = loc[index]
        if model is InspectionPlan and part == "checks":
            model, index = PlanCheck, index + 2  # skip the check name: a mapping key
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        models = [a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return []
        model, index = models[0], index + 1
    return list(model.model_fields)


# --------------------------------------------------------------------------- selecting hosts


class HostLike(Protocol):
    """What :func:`select_hosts` needs of a host (the store's ``HostSummary`` fits)."""

    @property
    def customer(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


H = TypeVar("H", bound=HostLike)


class SelectorError(ValueError):
    """A plan's host selector matched none of the customer's hosts."""

    def __init__(self, plan: InspectionPlan, candidates: Sequence[str]) -> None:
        self.plan = plan
        self.candidates = tuple(candidates)
        if candidates:
            shown = ", ".join(candidates[:10]) + (
                f", ... ({len(candidates)} in all)" if len(candidates) > 10 else ""
            )
            known = f"the customer's hosts are: {shown}"
        else:
            known = f"customer {plan.customer!r} has no hosts"
        super().__init__(
            f"plan {plan.name!r}: host selector ({plan.hosts.describe()}) matches no host of "
            f"customer {plan.customer!r}; {known}"
        )


def select_hosts(plan: InspectionPlan, hosts: Iterable[H]) -> list[H]:
    """The plan customer's hosts its selector matches, sorted by name.

    Hosts of other customers are never selected. Raises :class:`SelectorError` when
    nothing matches (a plan that inspects nothing is a mistake, not an empty report).
    """
    own = sorted((h for h in hosts if h.customer == plan.customer), key=lambda h: h.name)
    chosen = [h for h in own if plan.hosts.matches(h.name, h.labels)]
    if not chosen:
        raise SelectorError(plan, [h.name for h in own])
    return chosen
