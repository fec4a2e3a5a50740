"""What one run of one check produces, as the agent spools, prints and streams it.

A :class:`CheckRecord` folds a check's results into one verdict (worst severity, the
key and summary of the worst result) and keeps every result and metric, so the
collector can key findings on ``(key, item)`` and store every metric point.

>>> from checks.api import Result, Severity
>>> rec = CheckRecord.from_outputs("host.load", "host", 1.0, 2.5,
...     [Result(Severity.WARN, "LOAD_HIGH", "Load per core: 2.5"), Result(Severity.OK, "OK", "fine")], [])
>>> rec.severity, rec.key, rec.duration_ms
('WARN', 'LOAD_HIGH', 2.5)
>>> CheckRecord.from_dict(rec.to_dict()) == rec
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from checks.api import Metric, Result, Severity

__all__ = ["CheckRecord", "MetricRecord", "ResultRecord"]


class MetricRecord(NamedTuple):
    name: str
    value: float
    unit: str
    labels: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "labels": dict(self.labels)}


class ResultRecord(NamedTuple):
    severity: str
    key: str
    summary: str
    item: str | None = None
    details: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "key": self.key, "summary": self.summary}
        if self.item is not None:
            out["item"] = self.item
        if self.details is not None:
            out["details"] = self.details
        return out


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One check run. ``ts`` is the wall-clock start (Unix seconds)."""

    check: str
    layer: str
    ts: float
    duration_ms: float
    severity: str
    key: str
    summary: str
    results: tuple[ResultRecord, ...]
    metrics: tuple[MetricRecord, ...]
    inspection_id: str | None = None

    @classmethod
    def from_outputs(
        cls,
        check: str,
        layer: str,
        ts: float,
        duration_ms: float,
        results: Iterable[Result],
        metrics: Iterable[Metric],
        inspection_id: str | None = None,
    ) -> CheckRecord:
        result_list = results if type(results) is list else list(results)
        if not result_list:
            result_list = [Result(Severity.OK, "OK", "No findings")]
        if len(result_list) == 1:
            worst = result_list[0]
            summary = _label(worst)
        else:
            # First of the most severe, as max() gives. ``_value_`` is a plain attribute;
            # an Enum's ``value``, ``rank`` and ``__hash__`` each cost a Python call.
            worst = max(result_list, key=lambda r: _RANK[r.severity._value_])
            problems = [r for r in result_list if r.severity is not Severity.OK]
            if problems:
                problems.sort(key=lambda r: -_RANK[r.severity._value_])
                summary = "; ".join(_label(r) for r in problems[:5])
                if len(problems) > 5:
                    summary += f"; and {len(problems) - 5} more"
            else:
                summary = "; ".join(_label(r) for r in result_list[:3])
                if len(result_list) > 3:
                    summary += f"; and {len(result_list) - 3} more OK"
        return cls(
            check,
            layer,
            ts,
            round(duration_ms, 3),
            worst.severity._value_,
            worst.key,
            summary,
            tuple(
                [
                    _new(ResultRecord, (r.severity._value_, r.key, r.summary, r.item, r.details))
                    for r in result_list
                ]
            ),
            tuple([_new(MetricRecord, (m[0], m[1], m[2]._value_, m[3])) for m in metrics]),
            inspection_id,
        )

    def to_dict_without_metrics(self) -> dict[str, Any]:
        """:meth:`to_dict` up to and including ``results`` (the spool encodes metrics apart)."""
        return {
            "check": self.check,
            "layer": self.layer,
            "ts": self.ts,
            "severity": self.severity,
            "key": self.key,
            "summary": self.summary,
            "duration_ms": self.duration_ms,
            "results": [r.to_dict() for r in self.results],
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "layer": self.layer,
            "ts": self.ts,
            "severity": self.severity,
            "key": self.key,
            "summary": self.summary,
            "duration_ms": self.duration_ms,
            "results": [r.to_dict() for r in self.results],
            "metrics": [m.to_dict() for m in self.metrics],
        }
        if self.inspection_id is not None:
            out["inspection_id"] = self.inspection_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckRecord:
        return cls(
            check=str(data["check"]),
            layer=str(data["layer"]),
            ts=float(data["ts"]),
            duration_ms=float(data["duration_ms"]),
            severity=str(data["severity"]),
            key=str(data["key"]),
            summary=str(data["summary"]),
            results=tuple(
                ResultRecord(
                    str(r["severity"]), str(r["key"]), str(r["summary"]), r.get("item"), r.get("details")
                )
                for r in data.get("results", ())
            ),
            metrics=tuple(
                MetricRecord(
                    str(m["name"]),
                    float(m["value"]),
                    str(m["unit"]),
                    tuple(sorted((str(k), str(v)) for k, v in dict(m.get("labels") or {}).items())),
                )
                for m in data.get("metrics", ())
            ),
            inspection_id=data.get("inspection_id"),
        )


_RANK = {severity.value: severity.rank for severity in Severity}
_new = tuple.__new__


def _label(result: Result) -> str:
    return f"{result.item}: {result.summary}" if result.item else result.summary
