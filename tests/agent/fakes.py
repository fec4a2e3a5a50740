"""Test-only check declarations, so the agent's tests do not depend on the real checks.

They live outside ``checks/`` on purpose: the registry never finds them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
)
from checks.probe import Probe

RELEASE = threading.Event()
"""Set it to let every hanging check return (tests set it in teardown)."""


class NoParams(CheckParams):
    pass


class CountParams(CheckParams):
    value: float = 1.0
    """What the metric reports."""


def _collect_none(probe: Probe, params: CheckParams) -> None:
    return None


def _collect_hang(probe: Probe, params: CheckParams) -> None:
    RELEASE.wait(600)  # "forever" for a test, bounded so a broken test cannot wedge CI


def _collect_raise(probe: Probe, params: CheckParams) -> None:
    raise RuntimeError("backend said no: password=hunter2\nsecond line with a traceback-ish detail")


def _collect_permission(probe: Probe, params: CheckParams) -> None:
    raise PermissionError(13, "Permission denied", "/proc/1/fd")


def _collect_skip(probe: Probe, params: CheckParams) -> None:
    raise SkipCheck("nothing configured")


def _evaluate_metrics(params: CountParams, section: None, store: ValueStore) -> Iterator[Result | Metric]:
    store["runs"] = int(store.get("runs", 0)) + 1
    yield Result(Severity.OK, "OK", f"run {store['runs']}")
    yield Metric("test_value_count", params.value, Unit.COUNT, {"kind": "a"})
    yield Metric("test_runs_count", store["runs"], Unit.COUNT)


def _evaluate_ok(params: CheckParams, section: Any, store: ValueStore) -> Iterator[Result | Metric]:
    yield Result(Severity.OK, "OK", "fine")


def _evaluate_undeclared(params: CheckParams, section: None, store: ValueStore) -> Iterator[Result | Metric]:
    yield Result(Severity.OK, "OK", "fine")
    yield Metric("test_surprise_bytes", 1, Unit.BYTES)


def _evaluate_warn(params: CheckParams, section: None, store: ValueStore) -> Iterator[Result | Metric]:
    yield Result(Severity.WARN, "TEST_WARN", "a warning")


METRICS = Check(
    name="host.test_metrics",
    layer=Layer.HOST,
    summary="Emits two declared metrics and counts its runs in the store",
    collect=_collect_none,
    evaluate=_evaluate_metrics,
    params=CountParams,
    metrics=(
        MetricSpec("test_value_count", Unit.COUNT, "The configured value", Direction.NEUTRAL, ("kind",)),
        MetricSpec("test_runs_count", Unit.COUNT, "Runs so far"),
    ),
    timeout_s=2,
)
HANG = Check(
    name="network.test_hang",
    layer=Layer.NETWORK,
    summary="Never returns (until RELEASE)",
    collect=_collect_hang,
    evaluate=_evaluate_ok,
    params=NoParams,
    timeout_s=0.3,
)
RAISE = Check(
    name="storage.test_raise",
    layer=Layer.STORAGE,
    summary="Raises",
    collect=_collect_raise,
    evaluate=_evaluate_ok,
    params=NoParams,
)
PERMISSION = Check(
    name="platform.test_permission",
    layer=Layer.PLATFORM,
    summary="Lacks a permission",
    collect=_collect_permission,
    evaluate=_evaluate_ok,
    params=NoParams,
)
SKIP = Check(
    name="application.test_skip",
    layer=Layer.APPLICATION,
    summary="Does not apply",
    collect=_collect_skip,
    evaluate=_evaluate_ok,
    params=NoParams,
)
UNDECLARED = Check(
    name="application.test_undeclared",
    layer=Layer.APPLICATION,
    summary="Emits a metric it does not declare",
    collect=_collect_none,
    evaluate=_evaluate_undeclared,
    params=NoParams,
)
WARN = Check(
    name="host.test_warn",
    layer=Layer.HOST,
    summary="Always warns",
    collect=_collect_none,
    evaluate=_evaluate_warn,
    params=NoParams,
    default_enabled=False,
)

ALL = {c.name: c for c in (METRICS, HANG, RAISE, PERMISSION, SKIP, UNDECLARED, WARN)}
