"""Probable-cause ranking: which layer or change most likely explains an incident.

:func:`rank_causes` turns an incident's problem signals (and the changes seen shortly
before it) into a ranked list of :class:`Cause`, top first, each with a confidence
0..1, its evidence, an English reason and a stable ``reason_key`` (plus ``params``) for
translation. The rules, all deterministic:

*Layer candidates* — one per (host, layer) with a problem signal. Layers form three
tiers: host, network and storage (0) → platform (1) → application (2); a silent agent
counts as tier 3 (the last symptom) when another candidate explains it. A candidate
*explains* a signal of a higher tier that began at or after its onset (within
``tolerance_s``): fully on the same host, half on another host of the incident.
Confidence = 0.25 + 0.45·coverage (share of the other signals it explains) + 0.15 if
it is the first to go bad + 0.15·strength (its peak score), minus 0.35 if a lower tier
went bad before it (then it is more likely a symptom); clipped to 0.05..0.95.

*Change candidates* — a ``CHANGE`` on an incident host (or customer-wide) at most
``lookback_s`` before the onset of that host's first signal (up to ``tolerance_s``
after it). Confidence = weight · (0.55 + 0.4·recency), recency 1 at the onset and 0 at
the end of the lookback; weight 1 for a product version or config change, 0.9 for a
restarted service, 0.8 for an inventory change.

*Silence candidates* — a silent agent whose neighbours keep reporting: 0.5 + 0.3 *
the share of neighbours still reporting (``AGENT_SILENT``); a site or network outage
(most of a customer's agents silent together): 0.6 + 0.35 * the share silent.

Ties break on the earlier onset, then the kind, host and layer, so the order is stable.

>>> from checks.api import Layer
>>> from collector.incidents.signals import Signal, SignalKind
>>> def anomaly(series, onset):
...     return Signal(SignalKind.METRIC_ANOMALY, "acme", "db1", series, onset + 60, onset, score=0.9)
>>> causes = rank_causes([anomaly("storage_disk_await_seconds", 0.0), anomaly("app_latency_seconds", 120.0)])
>>> [(c.reason_key, c.layer.value, c.confidence) for c in causes]
[('CAUSE_LAYER_FIRST', 'storage', 0.95), ('CAUSE_LAYER_SYMPTOM', 'application', 0.05)]
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.api import Layer
from collector.detect.detector import iso
from collector.incidents.signals import ChangeKind, Signal, SignalKind

__all__ = ["Cause", "CauseKind", "OutageFacts", "chained", "rank_causes"]

_TIER = {
    Layer.HOST: 0,
    Layer.NETWORK: 0,
    Layer.STORAGE: 0,
    Layer.PLATFORM: 1,
    Layer.APPLICATION: 2,
}
_SILENT_TIER = 3
_CHANGE_WEIGHT = {
    ChangeKind.PRODUCT_VERSION: 1.0,
    ChangeKind.CONFIG: 1.0,
    ChangeKind.SERVICE_RESTARTED: 0.9,
    ChangeKind.INVENTORY: 0.8,
}


def chained(a: Layer | None, b: Layer | None) -> bool:
    """Whether a fault in one layer can explain (or be explained by) one in the other: the
    same layer, or two different tiers (host, network and storage are side by side).

    >>> chained(Layer.STORAGE, Layer.APPLICATION), chained(Layer.HOST, Layer.NETWORK)
    (True, False)
    """
    if a is None or b is None:
        return False
    return a is b or _TIER[a] != _TIER[b]


class CauseKind(enum.Enum):
    """What a candidate cause is."""

    LAYER = "LAYER"
    CHANGE = "CHANGE"
    AGENT_SILENT = "AGENT_SILENT"
    SITE_OUTAGE = "SITE_OUTAGE"


_KIND_ORDER = {CauseKind.SITE_OUTAGE: 0, CauseKind.CHANGE: 1, CauseKind.LAYER: 2, CauseKind.AGENT_SILENT: 3}


@dataclass(frozen=True, slots=True)
class OutageFacts:
    """Why an incident is a site/network outage: ``silent`` of ``total`` agents in scope."""

    silent: int
    total: int
    network: str | None = None
    """The network label of the scope (None: the whole customer)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"silent": self.silent, "total": self.total, "network": self.network}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutageFacts:
        """The inverse of :meth:`to_dict`."""
        network = data.get("network")
        return cls(int(data["silent"]), int(data["total"]), None if network is None else str(network))


@dataclass(frozen=True, slots=True)
class Cause:
    """A candidate cause: kind, where, how confident, why (English and a stable key), evidence."""

    kind: CauseKind
    reason_key: str
    reason: str
    confidence: float
    onset_ts: float
    host: str | None = None
    layer: Layer | None = None
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """The values the reason string is built from (for translations of ``reason_key``)."""
    evidence: tuple[Mapping[str, Any], ...] = ()
    """The signals behind it (``Signal.to_dict()`` form)."""

    @property
    def label(self) -> str:
        """A short label for titles: ``storage on db1``, ``product shop upgraded ... on web1``."""
        if self.kind is CauseKind.LAYER and self.layer is not None:
            return f"{self.layer.value} on {self.host}"
        if self.kind is CauseKind.CHANGE:
            where = f" on {self.host}" if self.host else ""
            return f"{self.params.get('change', 'change')}{where}"
        if self.kind is CauseKind.AGENT_SILENT:
            return f"agent or host {self.host} down"
        return "site or network outage"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :meth:`from_dict`)."""
        return {
            "kind": self.kind.value,
            "reason_key": self.reason_key,
            "reason": self.reason,
            "confidence": self.confidence,
            "onset_ts": self.onset_ts,
            "host": self.host,
            "layer": None if self.layer is None else self.layer.value,
            "params": dict(self.params),
            "evidence": [dict(e) for e in self.evidence],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cause:
        """The inverse of :meth:`to_dict`."""
        layer, host = data.get("layer"), data.get("host")
        return cls(
            kind=CauseKind(data["kind"]),
            reason_key=str(data["reason_key"]),
            reason=str(data["reason"]),
            confidence=float(data["confidence"]),
            onset_ts=float(data["onset_ts"]),
            host=None if host is None else str(host),
            layer=None if layer is None else Layer(layer),
            params=dict(data.get("params") or {}),
            evidence=tuple(dict(e) for e in data.get("evidence") or ()),
        )


def _clip(value: float) -> float:
    return round(min(0.95, max(0.05, value)), 3)


def _minutes(seconds: float) -> str:
    minutes = seconds / 60.0
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"


@dataclass(slots=True)
class _Group:
    host: str
    layer: Layer
    signals: list[Signal]
    onset: float
    strength: float


def rank_causes(
    signals: Sequence[Signal],
    changes: Sequence[Signal] = (),
    *,
    outage: OutageFacts | None = None,
    lookback_s: float = 1800.0,
    tolerance_s: float = 60.0,
) -> list[Cause]:
    """Rank the probable causes of an incident, top first (rules: module docstring).

    ``signals``: the incident's problem signals, one per series, each with its first
    onset and peak score; ``changes``: CHANGE signals seen around it (those outside the
    lookback are ignored here); ``outage``: set when the incident is a site outage.
    """
    problems = [s for s in signals if s.is_problem]
    if not problems:
        return []
    causes: list[Cause] = []
    first_onset = min(s.onset_ts for s in problems)
    silent = [s for s in problems if s.kind is SignalKind.AGENT_SILENT]
    groups = _layer_groups([s for s in problems if s.kind is not SignalKind.AGENT_SILENT])

    for group in groups:
        causes.append(_layer_cause(group, groups, silent, problems, first_onset, tolerance_s))
    causes.extend(_change_causes(problems, changes, lookback_s, tolerance_s))
    if outage is not None:
        causes.append(_outage_cause(silent, outage, first_onset))
    else:
        for s in silent:
            causes.append(_silent_cause(s, groups, tolerance_s))
    causes.sort(
        key=lambda c: (
            -c.confidence,
            c.onset_ts,
            _KIND_ORDER[c.kind],
            c.host or "",
            c.layer.value if c.layer else "",
        )
    )
    return causes


def _layer_groups(problems: Sequence[Signal]) -> list[_Group]:
    groups: dict[tuple[str, Layer], _Group] = {}
    for s in sorted(problems, key=lambda s: (s.onset_ts, s.series)):
        assert s.host is not None and s.layer is not None  # guaranteed by Signal for problem kinds
        g = groups.get((s.host, s.layer))
        if g is None:
            groups[(s.host, s.layer)] = _Group(s.host, s.layer, [s], s.onset_ts, s.score)
        else:
            g.signals.append(s)
            g.strength = max(g.strength, s.score)
    return list(groups.values())


def _tier(s: Signal) -> int:
    if s.kind is SignalKind.AGENT_SILENT:
        return _SILENT_TIER
    assert s.layer is not None
    return _TIER[s.layer]


def _layer_cause(
    g: _Group,
    groups: Sequence[_Group],
    silent: Sequence[Signal],
    problems: Sequence[Signal],
    first_onset: float,
    tol: float,
) -> Cause:
    tier = _TIER[g.layer]
    others = [s for s in problems if s not in g.signals]
    explained: list[Signal] = []
    weight = 0.0
    for s in others:
        if _tier(s) > tier and s.onset_ts >= g.onset - tol:
            explained.append(s)
            weight += 1.0 if s.host == g.host else 0.5
    coverage = weight / len(others) if others else 0.0
    lower = [h for h in groups if _TIER[h.layer] < tier and h.onset <= g.onset + tol]
    lower.sort(key=lambda h: (h.host != g.host, h.onset))
    is_first = g.onset <= first_onset + tol
    confidence = 0.25 + 0.45 * coverage + (0.15 if is_first else 0.0) + 0.15 * g.strength
    head = g.signals[0]
    what = head.summary or f"{head.series} {head.key}".strip()
    params: dict[str, Any] = {
        "layer": g.layer.value,
        "host": g.host,
        "onset": iso(g.onset),
        "what": what,
        "explains": len(explained),
    }
    if lower:
        cause = lower[0]
        confidence -= 0.35
        key = "CAUSE_LAYER_SYMPTOM"
        params.update(lower_layer=cause.layer.value, lower_host=cause.host)
        reason = (
            f"{g.layer.value} on {g.host} went bad at {iso(g.onset)}, after {cause.layer.value} on "
            f"{cause.host}: more likely a symptom than the cause"
        )
    elif explained:
        key = "CAUSE_LAYER_FIRST"
        reason = (
            f"{g.layer.value} on {g.host} went bad first ({what}, since {iso(g.onset)}) and explains "
            f"{len(explained)} later signal(s) in higher layers"
        )
    else:
        key = "CAUSE_LAYER_ONLY"
        reason = (
            f"{g.layer.value} on {g.host} went bad ({what}, since {iso(g.onset)}); "
            "no lower layer went bad before it"
        )
    return Cause(
        kind=CauseKind.LAYER,
        reason_key=key,
        reason=reason,
        confidence=_clip(confidence),
        onset_ts=g.onset,
        host=g.host,
        layer=g.layer,
        params=params,
        evidence=tuple(s.to_dict() for s in g.signals),
    )


def _change_causes(
    problems: Sequence[Signal], changes: Sequence[Signal], lookback_s: float, tol: float
) -> list[Cause]:
    host_onset: dict[str, float] = {}
    for s in problems:
        assert s.host is not None
        host_onset[s.host] = min(host_onset.get(s.host, s.onset_ts), s.onset_ts)
    first_onset = min(host_onset.values())
    causes = []
    for c in changes:
        if c.change is None:
            continue
        if c.host is None:
            onset = first_onset
        elif c.host in host_onset:
            onset = host_onset[c.host]
        else:
            continue
        before = onset - c.ts
        if not -tol <= before <= lookback_s:
            continue
        recency = 1.0 - max(0.0, before) / lookback_s if lookback_s > 0 else 1.0
        confidence = _CHANGE_WEIGHT[c.change.kind] * (0.55 + 0.4 * recency)
        described = c.change.describe()
        where = f"on {c.host}" if c.host else "for the whole customer"
        causes.append(
            Cause(
                kind=CauseKind.CHANGE,
                reason_key="CAUSE_CHANGE_BEFORE_ONSET",
                reason=(
                    f"{described} {where} at {iso(c.ts)}, {_minutes(max(0.0, before))} before the "
                    "degradation began: deployment or mis-operation"
                ),
                confidence=_clip(confidence),
                onset_ts=c.ts,
                host=c.host,
                layer=c.layer,
                params={
                    "change": described,
                    "change_kind": c.change.kind.value,
                    "subject": c.change.subject,
                    "before": c.change.before,
                    "after": c.change.after,
                    "host": c.host,
                    "at": iso(c.ts),
                    "before_onset_s": max(0.0, before),
                },
                evidence=(c.to_dict(),),
            )
        )
    return causes


def _silent_cause(s: Signal, groups: Sequence[_Group], tol: float) -> Cause:
    total = int(s.evidence.get("neighbours", 0))
    reporting = int(s.evidence.get("neighbours_reporting", 0))
    confidence = 0.5 + (0.3 * reporting / total if total else 0.0)
    earlier = [g for g in groups if g.host == s.host and g.onset <= s.onset_ts + tol]
    params: dict[str, Any] = {
        "host": s.host,
        "last_seen": iso(s.onset_ts),
        "neighbours": total,
        "neighbours_reporting": reporting,
    }
    if earlier:
        confidence -= 0.35
        key = "CAUSE_AGENT_SILENT_AFTER_FAULT"
        params["lower_layer"] = earlier[0].layer.value
        reason = (
            f"the agent on {s.host} fell silent at {iso(s.onset_ts)} after {earlier[0].layer.value} "
            "on the same host went bad: more likely a symptom"
        )
    elif total:
        key = "CAUSE_AGENT_SILENT"
        reason = (
            f"the agent on {s.host} stopped reporting at {iso(s.onset_ts)} while {reporting} of {total} "
            "neighbour(s) keep reporting: agent or host down"
        )
    else:
        key = "CAUSE_AGENT_SILENT_ALONE"
        reason = (
            f"the agent on {s.host} stopped reporting at {iso(s.onset_ts)}; no neighbour to compare "
            "with: agent, host or its network down"
        )
    return Cause(
        kind=CauseKind.AGENT_SILENT,
        reason_key=key,
        reason=reason,
        confidence=_clip(confidence),
        onset_ts=s.onset_ts,
        host=s.host,
        layer=Layer.HOST,
        params=params,
        evidence=(s.to_dict(),),
    )


def _outage_cause(silent: Sequence[Signal], outage: OutageFacts, first_onset: float) -> Cause:
    onset = min((s.onset_ts for s in silent), default=first_onset)
    scope = f"network {outage.network}" if outage.network else "the customer"
    share = outage.silent / outage.total if outage.total else 1.0
    return Cause(
        kind=CauseKind.SITE_OUTAGE,
        reason_key="CAUSE_SITE_OUTAGE",
        reason=(
            f"{outage.silent} of {outage.total} agents of {scope} stopped reporting together "
            f"(from {iso(onset)}): site or network outage"
        ),
        confidence=_clip(0.6 + 0.35 * share),
        onset_ts=onset,
        layer=Layer.NETWORK,
        params={
            "silent": outage.silent,
            "total": outage.total,
            "network": outage.network,
            "onset": iso(onset),
        },
        evidence=tuple(s.to_dict() for s in sorted(silent, key=lambda s: (s.onset_ts, s.host or ""))),
    )
