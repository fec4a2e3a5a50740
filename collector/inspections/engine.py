"""Run the rules over one inspection's facts and build the :class:`InspectionResult`.

The wiring layer gathers :class:`~collector.inspections.facts.HostFacts` for every host
:func:`~collector.inspections.plan.select_hosts` chose (answered or not) and calls
:func:`run_inspection`; everything here is pure.

Only rules that read one of the checks the plan runs are applied (a storage-only plan
gives a storage-only report even though the history holds other metrics); rules that
read no check (hosts that did not answer, OS release drift) always apply. Rules with
thresholds use the plan's overrides (``thresholds:``) over their defaults, and the
result lists which thresholds each applied rule used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from checks.api import Layer, Severity
from collector.inspections.catalogue import CATALOGUE, RESULT_EVIDENCE
from collector.inspections.compare import capacity_trends, compare, components, gauges
from collector.inspections.facts import HostFacts
from collector.inspections.model import (
    CapacityTrend,
    Coverage,
    Finding,
    HostOutcome,
    InspectionResult,
    Instance,
    OfflineHost,
    ThresholdUse,
)
from collector.inspections.plan import InspectionPlan
from collector.inspections.rules import RULES, Hit, Rule
from collector.inspections.rules.base import Thresholds
from collector.inspections.scoring import layer_scores, overall
from collector.reports.model import LocalText

__all__ = ["applicable_rules", "evaluate_rules", "run_inspection"]

TOP_FINDINGS = 3
"""Finding keys listed per host in the host table."""
_LAYER_ORDER = {layer: i for i, layer in enumerate(Layer)}


def applicable_rules(check_names: Iterable[str] | None, rules: Mapping[str, Rule] = RULES) -> list[Rule]:
    """Rules reading a check in ``check_names`` (all rules when None), plus check-less ones."""
    if check_names is None:
        return list(rules.values())
    wanted = set(check_names)
    return [r for r in rules.values() if not r.checks or wanted.intersection(r.checks)]


def _evidence(rule: Rule, hit: Hit) -> LocalText:
    if hit.template == "result" and hit.result is not None:
        r = hit.result
        return RESULT_EVIDENCE.format(check=r.check, result=r.key, summary=r.summary)
    return CATALOGUE[rule.key].evidence.format(**hit.values)


def evaluate_rules(
    hosts: Sequence[HostFacts],
    rules: Iterable[Rule] | None = None,
    thresholds: Mapping[str, Thresholds] | None = None,
) -> tuple[list[Finding], list[str]]:
    """Findings (most severe first, then layer and key) and the errors of rules that raised.

    Host rules see answered hosts only: an offline host's last results are stale.
    ``thresholds`` (rule key -> a plan's override) replace the rules' defaults.
    """
    overrides = thresholds or {}
    chosen = list(RULES.values()) if rules is None else list(rules)
    answered = [h for h in hosts if h.answered]
    findings: list[Finding] = []
    errors: list[str] = []
    for rule in chosen:
        instances: list[Instance] = []
        if rule.fleet is not None:
            pairs: list[tuple[str, Hit]] = []
            try:
                pairs = [(hit.host or "?", hit) for hit in rule.fleet(hosts)]
            except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
                # A rule's bug or unexpected data must not lose the whole report: recorded instead.
                errors.append(f"{rule.key}: {type(exc).__name__}: {exc}")
            instances.extend(_instances(rule, pairs, errors))
        if rule.host is not None:
            for host in answered:
                try:
                    hits = [(host.name, hit) for hit in rule.apply(host, overrides.get(rule.key))]
                except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
                    errors.append(f"{rule.key} on {host.name}: {type(exc).__name__}: {exc}")
                    continue
                instances.extend(_instances(rule, hits, errors))
        if instances:
            entry = CATALOGUE[rule.key]
            instances.sort(key=lambda i: (i.host, i.item or ""))
            worst = Severity.worst(*(i.severity for i in instances))
            findings.append(
                Finding(rule.key, rule.layer, worst, entry.title, entry.recommendation, tuple(instances))
            )
    findings.sort(key=lambda f: (-f.severity.rank, _LAYER_ORDER[f.layer], f.key))
    return findings, errors


def _instances(rule: Rule, hits: Iterable[tuple[str, Hit]], errors: list[str]) -> list[Instance]:
    found = []
    for host, hit in hits:
        if hit.severity is Severity.OK:
            continue
        try:
            evidence = _evidence(rule, hit)
        except (KeyError, IndexError, ValueError) as exc:
            # A template field the rule did not fill: a bug, reported rather than fatal.
            errors.append(f"{rule.key} on {host}: evidence {type(exc).__name__}: {exc}")
            continue
        found.append(Instance(host, hit.severity, evidence, hit.item))
    return found


def _os_label(inventory: Mapping[str, object] | None) -> str | None:
    os_doc = (inventory or {}).get("os")
    if isinstance(os_doc, Mapping):
        name = os_doc.get("name") or os_doc.get("id")
        return str(name) if name else None
    return None


def _outcomes(
    hosts: Sequence[HostFacts], findings: Sequence[Finding], trends: Sequence[CapacityTrend]
) -> list[HostOutcome]:
    per_host: dict[str, list[tuple[Severity, str]]] = {}
    for finding in findings:
        for i in finding.instances:
            per_host.setdefault(i.host, []).append((i.severity, finding.key))
    outcomes = []
    for host in sorted(hosts, key=lambda h: h.name):
        seen = per_host.get(host.name, [])
        ranked = sorted(seen, key=lambda pair: (-pair[0].rank, pair[1]))
        top: list[str] = []
        for _, key in ranked:
            if key not in top and len(top) < TOP_FINDINGS:
                top.append(key)
        outcomes.append(
            HostOutcome(
                host.name,
                host.answered,
                Severity.worst(*(s for s, _ in seen)),
                sum(1 for s, _ in seen if s is Severity.CRIT),
                sum(1 for s, _ in seen if s is Severity.WARN),
                sum(1 for s, _ in seen if s is Severity.UNKNOWN),
                tuple(top),
                _os_label(host.inventory),
                components(host.inventory) if host.answered else {},
                gauges(trends, host.name),
            )
        )
    return outcomes


def run_inspection(
    plan: InspectionPlan,
    run_id: str,
    hosts: Sequence[HostFacts],
    period_start: float,
    period_end: float,
    previous: InspectionResult | None = None,
    *,
    check_names: Iterable[str] | None = None,
    rules: Mapping[str, Rule] = RULES,
) -> InspectionResult:
    """Apply the rules, score, compare with ``previous`` and report coverage.

    ``hosts`` are all hosts the plan selected, answered or not. ``check_names`` defaults
    to the plan's checks. ``previous`` is the customer's previous result for this plan.
    """
    if period_end < period_start:
        raise ValueError(
            f"inspection {run_id}: period_end {period_end} is before period_start {period_start}"
        )
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise ValueError(f"inspection {run_id}: a host is listed twice")
    checks = plan.check_names() if check_names is None else tuple(check_names)
    applied = applicable_rules(checks, rules)
    overrides = plan.rule_thresholds(rules)
    findings, errors = evaluate_rules(hosts, applied, overrides)
    trends = [t for h in sorted(hosts, key=lambda h: h.name) if h.answered for t in capacity_trends(h)]
    outcomes = _outcomes(hosts, findings, trends)
    offline = tuple(
        OfflineHost(h.name, h.last_seen) for h in sorted(hosts, key=lambda h: h.name) if not h.answered
    )
    answered = [h.name for h in hosts if h.answered]
    layers = layer_scores(findings, answered)
    return InspectionResult(
        run_id=run_id,
        plan=plan.name,
        customer=plan.customer,
        language=plan.language,
        period_start=period_start,
        period_end=period_end,
        coverage=Coverage(len(hosts), len(answered), offline),
        overall_score=overall(s.score for s in layers),
        layers=layers,
        findings=tuple(findings),
        hosts=tuple(outcomes),
        comparison=compare(findings, outcomes, trends, previous, {r.key for r in applied}),
        rule_errors=tuple(errors),
        thresholds=_thresholds_used(applied, overrides),
    )


def _thresholds_used(
    applied: Iterable[Rule], overrides: Mapping[str, Thresholds]
) -> tuple[ThresholdUse, ...]:
    used = []
    for rule in sorted(applied, key=lambda r: r.key):
        chosen = overrides.get(rule.key) or rule.thresholds
        if chosen is not None:
            used.append(ThresholdUse(rule.key, chosen.model_dump(), chosen.describe(), rule.key in overrides))
    return tuple(used)
