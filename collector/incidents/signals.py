"""Signals: the one input type of the incident engine.

Everything that may start, grow or end an incident arrives as a :class:`Signal`: a
detector anomaly or recovery, a CRIT check result, a silent agent, or a change
(product version, restarted service, changed inventory or configuration). The
constructors below turn the collector's own records into signals, so the wiring code
never assembles one by hand:

>>> from collector.detect.detector import Anomaly
>>> a = Anomaly("storage_disk_await_seconds", "LEVEL_SHIFT_UP", "up", 660.0, 600.0,
...             0.09, 0.004, 0.001, 0.007, 0.93)
>>> s = Signal.from_detector(a, customer="acme", host="db1")
>>> s.kind.value, s.layer.value, s.severity.value, s.onset_ts, s.series
('METRIC_ANOMALY', 'storage', 'CRIT', 600.0, 'storage_disk_await_seconds')
>>> Signal.product_upgrade("acme", "web1", "shop", "1.2", "1.3", ts=100.0).change.describe()
'product shop upgraded from 1.2 to 1.3'

A signal's meaning travels with the data: its layer is the layer the check declares (a
result carries it as ``layer``) and a metric's ceiling comes from the unit its samples
carry (``percent``: 100). Only old stored data without them falls back to reading names
(:func:`layer_from`, :func:`ceiling_from`), and each fallback is counted in
:data:`NAME_FALLBACKS` so it shows when the last of that data is gone.

A signal is identified on its host by ``series``: the detector's series key for metric
signals, ``check:<check>[<item>]`` for check results, ``agent`` for a silent agent. A
``RECOVERY`` carries the same series as the signal it ends.
"""

from __future__ import annotations

import enum
import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from checks.api import Layer, Severity
from collector.detect.detector import Anomaly, Recovery, ceiling_for, iso

__all__ = [
    "AGENT_SERIES",
    "NAME_FALLBACKS",
    "Change",
    "ChangeKind",
    "Signal",
    "SignalKind",
    "ceiling_from",
    "check_series",
    "layer_from",
    "layer_of",
]

AGENT_SERIES = "agent"
"""The series of an agent's own liveness (``AGENT_SILENT`` and its recovery)."""

DEFAULT_CRIT_SCORE = 0.8
"""Detector score from which an anomaly counts as CRIT (z at twice the band edge)."""


class SignalKind(enum.Enum):
    """What a signal reports."""

    METRIC_ANOMALY = "METRIC_ANOMALY"
    CHECK_CRIT = "CHECK_CRIT"
    AGENT_SILENT = "AGENT_SILENT"
    RECOVERY = "RECOVERY"
    CHANGE = "CHANGE"


class ChangeKind(enum.Enum):
    """What changed on a host (a ``CHANGE`` signal): a candidate cause, never a symptom."""

    PRODUCT_VERSION = "PRODUCT_VERSION"
    SERVICE_RESTARTED = "SERVICE_RESTARTED"
    INVENTORY = "INVENTORY"
    CONFIG = "CONFIG"


_CHANGE_LAYER = {
    ChangeKind.PRODUCT_VERSION: Layer.APPLICATION,
    ChangeKind.SERVICE_RESTARTED: Layer.PLATFORM,
    ChangeKind.CONFIG: Layer.PLATFORM,
    ChangeKind.INVENTORY: Layer.HOST,
}

# metric name prefixes (the catalogue's convention) and check name prefixes
_PREFIX_LAYER = (
    ("host_", Layer.HOST),
    ("net_", Layer.NETWORK),
    ("storage_", Layer.STORAGE),
    ("platform_", Layer.PLATFORM),
    ("app_", Layer.APPLICATION),
    ("host.", Layer.HOST),
    ("network.", Layer.NETWORK),
    ("storage.", Layer.STORAGE),
    ("platform.", Layer.PLATFORM),
    ("application.", Layer.APPLICATION),
)


def layer_of(name: str) -> Layer | None:
    """The layer of a metric name, series key or check name, from its prefix.

    A ``check:`` series is looked up by its check name. None when the prefix is unknown.

    >>> [layer_of(n).value for n in ("net_tcp_retrans_per_second", "storage.disk_io",
    ...                               "check:application.http[shop]", "app_errors_per_second")]
    ['network', 'storage', 'application', 'application']
    >>> layer_of("temperature") is None
    True
    """
    if name.startswith("check:"):
        name = name[len("check:") :]
    for prefix, layer in _PREFIX_LAYER:
        if name.startswith(prefix):
            return layer
    return None


NAME_FALLBACKS: Counter[str] = Counter()
"""How often a signal's meaning was read from a name because the data did not carry it
(old stored data): ``layer`` (no layer on the result or check), ``ceiling`` (no unit)."""


def layer_from(carried: Layer | str | None, *names: str) -> Layer | None:
    """The layer the data carries (a result's ``layer``, the check's declared layer); only
    when it carries none (old stored data), the first of ``names`` whose prefix tells it,
    counted in :data:`NAME_FALLBACKS`.

    >>> layer_from("storage", "host.cpu").value
    'storage'
    >>> before = NAME_FALLBACKS["layer"]
    >>> layer_from("", "net_tcp_retransmit_percent").value, NAME_FALLBACKS["layer"] - before
    ('network', 1)
    """
    if isinstance(carried, Layer):
        return carried
    if carried:
        try:
            return Layer(carried)
        except ValueError:
            pass  # not a layer of this version: read the names
    for name in names:
        found = layer_of(name)
        if found is not None:
            NAME_FALLBACKS["layer"] += 1
            return found
    return None


def ceiling_from(unit: str | None, name: str) -> float | None:
    """A metric's hard ceiling from the unit its samples carry: 100 for ``percent``, none
    for other units. Without a unit (old stored data) the name's suffix tells, counted.

    >>> ceiling_from("percent", "host_cpu_busy"), ceiling_from("seconds", "x_percent")
    (100.0, None)
    >>> before = NAME_FALLBACKS["ceiling"]
    >>> ceiling_from("", "host_cpu_busy_percent"), NAME_FALLBACKS["ceiling"] - before
    (100.0, 1)
    """
    if unit:
        return 100.0 if unit == "percent" else None
    NAME_FALLBACKS["ceiling"] += 1
    return ceiling_for(name)


def check_series(check: str, item: str | None = None) -> str:
    """The series key of a check result: ``check:<check>`` or ``check:<check>[<item>]``.

    >>> check_series("storage.filesystem", "/var")
    'check:storage.filesystem[/var]'
    """
    return f"check:{check}" if not item else f"check:{check}[{item}]"


@dataclass(frozen=True, slots=True)
class Change:
    """What changed: ``subject`` is the product, service unit, config path or inventory section."""

    kind: ChangeKind
    subject: str
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        """A short English description (the reason strings embed it).

        >>> Change(ChangeKind.PRODUCT_VERSION, "shop", None, "2.0").describe()
        'product shop installed at 2.0'
        >>> Change(ChangeKind.SERVICE_RESTARTED, "nginx.service").describe()
        'service nginx.service restarted'
        """
        kind = self.kind
        if kind is ChangeKind.PRODUCT_VERSION:
            if self.before is None:
                return f"product {self.subject} installed at {self.after}"
            if self.after is None:
                return f"product {self.subject} removed (was {self.before})"
            return f"product {self.subject} upgraded from {self.before} to {self.after}"
        if kind is ChangeKind.SERVICE_RESTARTED:
            return f"service {self.subject} restarted"
        if kind is ChangeKind.CONFIG:
            return f"configuration {self.subject} changed"
        return f"inventory {self.subject} changed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :meth:`from_dict`)."""
        return {"kind": self.kind.value, "subject": self.subject, "before": self.before, "after": self.after}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        """The inverse of :meth:`to_dict`."""
        before, after = data.get("before"), data.get("after")
        return cls(
            ChangeKind(data["kind"]),
            str(data["subject"]),
            None if before is None else str(before),
            None if after is None else str(after),
        )


@dataclass(frozen=True, slots=True)
class Signal:
    """One input of the incident engine (see the module docstring for the series convention).

    ``onset_ts`` is when the trouble began (the detector's first deviating sample, the
    agent's last message); ``ts`` is when it was reported. ``score`` is 0..1 (1 for a
    CRIT check or a silent agent). ``evidence`` must be JSON-able: it is kept in the
    engine's saved state and shown on the case.
    """

    kind: SignalKind
    customer: str
    host: str | None
    series: str
    ts: float
    onset_ts: float
    layer: Layer | None = None
    check: str = ""
    key: str = ""
    score: float = 1.0
    severity: Severity = Severity.CRIT
    summary: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict, hash=False)
    change: Change | None = None

    def __post_init__(self) -> None:
        where = f"{self.kind.value} signal for {self.customer!r}/{self.host!r} {self.series!r}"
        if not self.customer:
            raise ValueError(f"{where}: customer is empty")
        if self.host is None and self.kind is not SignalKind.CHANGE:
            raise ValueError(f"{where}: only a CHANGE may be customer-wide (host None)")
        if not self.series:
            raise ValueError(f"{where}: series is empty")
        if not (math.isfinite(self.ts) and math.isfinite(self.onset_ts)):
            raise ValueError(f"{where}: ts and onset_ts must be finite")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"{where}: score {self.score} outside 0..1")
        if (self.kind is SignalKind.CHANGE) != (self.change is not None):
            raise ValueError(f"{where}: a CHANGE signal, and only it, carries a change")
        layer = self.layer
        if layer is None:
            if self.change is not None:
                layer = _CHANGE_LAYER[self.change.kind]
            elif self.kind is SignalKind.AGENT_SILENT:
                layer = Layer.HOST
            else:
                layer = layer_from(None, self.check, self.series)
            if layer is None and self.kind in (SignalKind.METRIC_ANOMALY, SignalKind.CHECK_CRIT):
                raise ValueError(
                    f"{where}: cannot tell its layer from check {self.check!r} or series; pass layer="
                )
            object.__setattr__(self, "layer", layer)
        try:
            json.dumps(self.evidence, allow_nan=False)
        except (TypeError, ValueError) as exc:  # evidence must survive the JSON state file
            raise ValueError(f"{where}: evidence is not JSON-able: {exc}") from exc

    @property
    def is_problem(self) -> bool:
        """True for the kinds that make an incident (anomaly, CRIT check, silent agent)."""
        return self.kind in (SignalKind.METRIC_ANOMALY, SignalKind.CHECK_CRIT, SignalKind.AGENT_SILENT)

    def with_evidence(self, **extra: Any) -> Signal:
        """A copy with ``extra`` merged into its evidence."""
        return replace(self, evidence={**self.evidence, **extra})

    # --- constructors ----------------------------------------------------------------

    @classmethod
    def from_detector(
        cls,
        event: Anomaly | Recovery,
        *,
        customer: str,
        host: str,
        check: str = "",
        layer: Layer | None = None,
        crit_score: float = DEFAULT_CRIT_SCORE,
    ) -> Signal:
        """A detector event as a signal: an :class:`Anomaly` is METRIC_ANOMALY (CRIT from
        ``crit_score`` on, else WARN), a :class:`Recovery` is RECOVERY of the same series."""
        if isinstance(event, Anomaly):
            return cls(
                kind=SignalKind.METRIC_ANOMALY,
                customer=customer,
                host=host,
                series=event.series,
                ts=event.ts,
                onset_ts=event.onset_ts,
                layer=layer,
                check=check,
                key=event.key,
                score=min(1.0, max(0.0, event.score)),
                severity=Severity.CRIT if event.score >= crit_score else Severity.WARN,
                summary=event.summary,
                evidence={
                    "observed": event.observed,
                    "expected": event.expected,
                    "band": [event.band_low, event.band_high],
                    "direction": event.direction,
                    "rule": event.key,
                },
            )
        return cls(
            kind=SignalKind.RECOVERY,
            customer=customer,
            host=host,
            series=event.series,
            ts=event.ts,
            onset_ts=event.onset_ts,
            layer=layer,
            check=check,
            key=event.key,
            score=0.0,
            severity=Severity.OK,
            summary=f"{event.series} recovered ({event.reason})",
            evidence={
                "observed": event.observed,
                "expected": event.expected,
                "peak_score": event.peak_score,
                "reason": event.reason,
            },
        )

    @classmethod
    def check_crit(
        cls,
        customer: str,
        host: str,
        check: str,
        key: str,
        *,
        ts: float,
        onset_ts: float | None = None,
        item: str | None = None,
        summary: str = "",
        evidence: Mapping[str, Any] | None = None,
        layer: Layer | None = None,
    ) -> Signal:
        """A CRIT check result (``onset_ts``: the first CRIT run, default ``ts``; ``layer``:
        the result's layer, needed when the check's name does not tell it)."""
        return cls(
            kind=SignalKind.CHECK_CRIT,
            customer=customer,
            host=host,
            series=check_series(check, item),
            ts=ts,
            onset_ts=ts if onset_ts is None else onset_ts,
            layer=layer,
            check=check,
            key=key,
            summary=summary or f"{check} CRIT: {key}",
            evidence=dict(evidence or {}),
        )

    @classmethod
    def check_recovered(
        cls, customer: str, host: str, check: str, *, ts: float, item: str | None = None
    ) -> Signal:
        """The end of a CRIT check: the same check (and item) is no longer CRIT."""
        return cls(
            kind=SignalKind.RECOVERY,
            customer=customer,
            host=host,
            series=check_series(check, item),
            ts=ts,
            onset_ts=ts,
            check=check,
            key="OK",
            score=0.0,
            severity=Severity.OK,
            summary=f"{check} no longer CRIT",
        )

    @classmethod
    def agent_silent(cls, customer: str, host: str, *, last_seen_ts: float, ts: float) -> Signal:
        """An agent that stopped reporting (no message since ``last_seen_ts``; noticed at ``ts``)."""
        return cls(
            kind=SignalKind.AGENT_SILENT,
            customer=customer,
            host=host,
            series=AGENT_SERIES,
            ts=ts,
            onset_ts=last_seen_ts,
            key="AGENT_SILENT",
            summary=f"agent on {host} silent since {iso(last_seen_ts)}",
            evidence={"last_seen_ts": last_seen_ts},
        )

    @classmethod
    def agent_back(cls, customer: str, host: str, *, ts: float) -> Signal:
        """A silent agent reporting again."""
        return cls(
            kind=SignalKind.RECOVERY,
            customer=customer,
            host=host,
            series=AGENT_SERIES,
            ts=ts,
            onset_ts=ts,
            key="OK",
            score=0.0,
            severity=Severity.OK,
            summary=f"agent on {host} reporting again",
        )

    @classmethod
    def changed(cls, customer: str, host: str | None, change: Change, *, ts: float) -> Signal:
        """A change on ``host`` (None: customer-wide, e.g. a shared configuration)."""
        return cls(
            kind=SignalKind.CHANGE,
            customer=customer,
            host=host,
            series=f"change:{change.kind.value}:{change.subject}",
            ts=ts,
            onset_ts=ts,
            key=change.kind.value,
            score=0.0,
            severity=Severity.OK,
            summary=change.describe(),
            change=change,
        )

    @classmethod
    def product_upgrade(
        cls,
        customer: str,
        host: str,
        product: str,
        from_version: str | None,
        to_version: str | None,
        *,
        ts: float,
    ) -> Signal:
        """A ``product_upgrades`` row (store) as a CHANGE signal."""
        change = Change(ChangeKind.PRODUCT_VERSION, product, from_version, to_version)
        return cls.changed(customer, host, change, ts=ts)

    # --- persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :meth:`from_dict`)."""
        return {
            "kind": self.kind.value,
            "customer": self.customer,
            "host": self.host,
            "series": self.series,
            "ts": self.ts,
            "onset_ts": self.onset_ts,
            "layer": None if self.layer is None else self.layer.value,
            "check": self.check,
            "key": self.key,
            "score": self.score,
            "severity": self.severity.value,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "change": None if self.change is None else self.change.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signal:
        """The inverse of :meth:`to_dict` (raises ValueError/KeyError on a malformed dict)."""
        layer, change, host = data.get("layer"), data.get("change"), data.get("host")
        return cls(
            kind=SignalKind(data["kind"]),
            customer=str(data["customer"]),
            host=None if host is None else str(host),
            series=str(data["series"]),
            ts=float(data["ts"]),
            onset_ts=float(data["onset_ts"]),
            layer=None if layer is None else Layer(layer),
            check=str(data.get("check", "")),
            key=str(data.get("key", "")),
            score=float(data.get("score", 1.0)),
            severity=Severity(data.get("severity", "CRIT")),
            summary=str(data.get("summary", "")),
            evidence=dict(data.get("evidence") or {}),
            change=None if change is None else Change.from_dict(change),
        )
