"""Health scores: one per layer (0..100) and one overall.

The formula, in full:

1. Each finding instance costs its host points in its layer: CRIT 30, UNKNOWN 15,
   WARN 10 (:data:`WEIGHTS`). A host's layer score is ``max(0, 100 - sum of costs)``.
2. A layer's hosts are the hosts that answered, plus any host with an instance in that
   layer (a host that did not answer counts in the layer of HOST_NOT_ANSWERING).
3. The layer score is the mean of two numbers: the average host's score and the worst
   host's score, ``(mean + min) / 2``, rounded half up. The average keeps a large fleet's
   score proportional; the worst host keeps one broken host visible (one CRIT on one
   of twelve hosts gives 84, not 98).
4. A layer with no hosts has no score (None). The overall score is the mean of the
   layers that have one, rounded half up (None when none has).

>>> host_layer_score([Severity.CRIT, Severity.WARN])
60
>>> combine([100] * 11 + [70])
84
>>> overall([84, 100, 100, 100, 100])
97
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from checks.api import Layer, Severity
from collector.inspections.model import Finding, LayerScore

__all__ = ["WEIGHTS", "combine", "host_layer_score", "layer_scores", "overall"]

WEIGHTS = {Severity.CRIT: 30, Severity.UNKNOWN: 15, Severity.WARN: 10, Severity.OK: 0}


def _round(value: float) -> int:
    """Round half up (Python's round() rounds half to even: 84.5 -> 84)."""
    return int(value + 0.5)


def host_layer_score(severities: Iterable[Severity]) -> int:
    """One host's score in one layer from the severities of its finding instances there."""
    return max(0, 100 - sum(WEIGHTS[s] for s in severities))


def combine(host_scores: Sequence[int]) -> int:
    """A layer's score from its hosts' scores: ``(mean + min) / 2`` rounded half up."""
    if not host_scores:
        raise ValueError("combine() needs at least one host score")
    mean = sum(host_scores) / len(host_scores)
    return _round((mean + min(host_scores)) / 2)


def layer_scores(findings: Sequence[Finding], answered: Iterable[str]) -> tuple[LayerScore, ...]:
    """Every layer's score (lowest layer first) and its finding counts per severity."""
    answered_hosts = set(answered)
    scores = []
    for layer in Layer:
        in_layer = [f for f in findings if f.layer is layer]
        per_host: dict[str, list[Severity]] = {host: [] for host in answered_hosts}
        for finding in in_layer:
            for instance in finding.instances:
                per_host.setdefault(instance.host, []).append(instance.severity)
        score = combine([host_layer_score(s) for s in per_host.values()]) if per_host else None
        counts = {
            s: sum(1 for f in in_layer if f.severity is s)
            for s in (Severity.CRIT, Severity.WARN, Severity.UNKNOWN)
        }
        scores.append(
            LayerScore(layer, score, counts[Severity.CRIT], counts[Severity.WARN], counts[Severity.UNKNOWN])
        )
    return tuple(scores)


def overall(layer_values: Iterable[int | None]) -> int | None:
    """Mean of the layer scores that exist, rounded half up (None when none exists)."""
    present = [v for v in layer_values if v is not None]
    return _round(sum(present) / len(present)) if present else None
