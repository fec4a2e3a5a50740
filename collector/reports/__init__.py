"""Customer reports: the inspection report (巡检报告) and the fault-analysis report (事故分析报告).

Build a model (:mod:`collector.reports.model`), then render it::

    render_inspection(report, "pdf", "zh-CN") -> bytes
    render_fault_analysis(report, "html", "en") -> bytes

Formats: ``html`` (one self-contained file), ``pdf`` (A4, WeasyPrint) and ``json`` (the
same facts). Languages: ``en`` and ``zh-CN``.
"""

from __future__ import annotations

from collector.reports.model import (
    CapacityTrend,
    CaseInfo,
    CaseNote,
    Comparison,
    Coverage,
    Customer,
    EvidenceChart,
    FaultAnalysisReport,
    Finding,
    FindingChange,
    FindingInstance,
    HostSummary,
    Impact,
    InspectionReport,
    InventoryChange,
    Lang,
    LayerScore,
    LocalText,
    OfflineHost,
    ProbableCause,
    Recommendation,
    RejectedCause,
    SignOff,
    TimelineEvent,
    TimelineKind,
    Trend,
)
from collector.reports.render import (
    Format,
    ReportError,
    clean_logo,
    load_logo,
    render_fault_analysis,
    render_inspection,
)

__all__ = [
    "CapacityTrend",
    "CaseInfo",
    "CaseNote",
    "Comparison",
    "Coverage",
    "Customer",
    "EvidenceChart",
    "FaultAnalysisReport",
    "Finding",
    "FindingChange",
    "FindingInstance",
    "Format",
    "HostSummary",
    "Impact",
    "InspectionReport",
    "InventoryChange",
    "Lang",
    "LayerScore",
    "LocalText",
    "OfflineHost",
    "ProbableCause",
    "Recommendation",
    "RejectedCause",
    "ReportError",
    "SignOff",
    "TimelineEvent",
    "TimelineKind",
    "Trend",
    "clean_logo",
    "load_logo",
    "render_fault_analysis",
    "render_inspection",
]
