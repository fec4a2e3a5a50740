"""Inspections (定期巡检): plans, findings rules, health scores and comparison.

Public surface::

    load_plan(path) / parse_plan(data)      -> InspectionPlan   (ConfigError by file + path)
    select_hosts(plan, hosts)               -> hosts             (SelectorError when none match)
    run_inspection(plan, run_id, facts, period_start, period_end, previous) -> InspectionResult

Rules live in :mod:`collector.inspections.rules` (``RULES``), their wording in both
languages in :mod:`collector.inspections.catalogue`, the score formula in
:mod:`collector.inspections.scoring`, comparison semantics in
:mod:`collector.inspections.compare`.
"""

from collector.inspections.engine import applicable_rules, evaluate_rules, run_inspection
from collector.inspections.facts import HostFacts, MetricSummary, ResultFact
from collector.inspections.model import (
    CapacityTrend,
    Comparison,
    Coverage,
    Finding,
    FindingRef,
    HostOutcome,
    InspectionResult,
    Instance,
    InventoryChange,
    LayerScore,
    OfflineHost,
)
from collector.inspections.plan import (
    HostSelector,
    InspectionPlan,
    SelectorError,
    load_plan,
    parse_plan,
    select_hosts,
)
from collector.inspections.rules import RULES, Hit, Rule

__all__ = [
    "RULES",
    "CapacityTrend",
    "Comparison",
    "Coverage",
    "Finding",
    "FindingRef",
    "Hit",
    "HostFacts",
    "HostOutcome",
    "HostSelector",
    "InspectionPlan",
    "InspectionResult",
    "Instance",
    "InventoryChange",
    "LayerScore",
    "MetricSummary",
    "OfflineHost",
    "ResultFact",
    "Rule",
    "SelectorError",
    "applicable_rules",
    "evaluate_rules",
    "load_plan",
    "parse_plan",
    "run_inspection",
    "select_hosts",
]
