"""Loads every check and holds each declaration to the same contract (sos-style)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from pydantic import ValidationError

import checks.api
from checks.api import Check, CheckParams, Layer
from checks.registry import all_checks, catalogue, checks_in_module

CHECKS = list(all_checks().values())


def test_public_api_is_frozen():
    # Changing the check API is a decision, not an accident: update this list on purpose.
    assert sorted(checks.api.__all__) == sorted(
        [
            "Check",
            "CheckParams",
            "Direction",
            "Layer",
            "Levels",
            "Metric",
            "MetricSpec",
            "Result",
            "Severity",
            "SkipCheck",
            "Unit",
            "ValueStore",
            "check_levels",
            "get_rate",
            "render_bytes",
            "render_percent",
            "render_seconds",
        ]
    )


def test_every_layer_has_checks():
    layers = {c.layer for c in CHECKS}
    assert layers == set(Layer)
    assert len(CHECKS) >= 30, [c.name for c in CHECKS]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_declaration(check: Check[Any, Any]):
    module = importlib.import_module(check.collect.__module__)
    # One module per check, named after it: checks/storage/filesystem.py -> storage.filesystem.
    assert module.__name__ == f"checks.{check.name}"
    assert checks_in_module(module) == [check]
    assert module.__doc__ and check.name in module.__doc__, "module docstring must name the check"
    assert "::" in module.__doc__ or ">>>" in module.__doc__, "module docstring must show a sample"
    assert check.collect.__name__.startswith("collect"), check.collect.__name__
    assert check.evaluate.__name__.startswith("evaluate"), check.evaluate.__name__
    assert len(inspect.signature(check.evaluate).parameters) == 3
    assert len(inspect.signature(check.collect).parameters) == 2
    assert check.summary.strip() and not check.summary.endswith(".")
    assert 0 < check.timeout_s <= check.interval_s
    assert check.metrics, f"{check.name} declares no metrics"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_params_have_defaults_and_reject_unknown_keys(check: Check[Any, Any]):
    assert issubclass(check.params, CheckParams)
    defaults = check.params()
    with pytest.raises(ValidationError):
        check.params.model_validate({"definitely_not_a_param": 1})
    with pytest.raises(ValidationError):
        defaults.__class__.model_validate({**defaults.model_dump(), "zz_unknown": True})
    for name, field in check.params.model_fields.items():
        assert field.description, f"{check.name}: param {name!r} needs a docstring"


def test_catalogue_is_consistent():
    specs = catalogue()
    assert len(specs) >= 100
    for name, spec in specs.items():
        assert name == spec.name
        assert spec.description[0].isupper() or spec.description[0].isdigit(), name


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_keys_are_declared_once(check: Check[Any, Any]):
    assert len(set(check.keys)) == len(check.keys)
    assert "OK" not in check.keys


METRIC_PREFIX = {
    Layer.HOST: "host_",
    Layer.NETWORK: "net_",
    Layer.STORAGE: "storage_",
    Layer.PLATFORM: "platform_",
    Layer.APPLICATION: "app_",
}
"""One metric name prefix per layer: a metric's name says which layer it belongs to."""

NETWORK_LEGACY = frozenset(
    {
        "network_conntrack_drops_count",
        "network_conntrack_entries_count",
        "network_conntrack_max_count",
        "network_conntrack_used_percent",
        "network_neigh_entries_count",
        "network_neigh_gateway_resolved_boolean",
        "network_neigh_incomplete_count",
        "network_neigh_limit_count",
        "network_neigh_table_overflows_count",
        "network_neigh_used_percent",
    }
)
"""Stored series, baselines and inspection rules already use these names: renaming them is a
data migration of its own. No metric may join them; new network metrics use ``net_``."""


def test_one_metric_prefix_per_layer():
    wrong = sorted(
        f"{check.name}: {spec.name} (layer {check.layer.value}: {METRIC_PREFIX[check.layer]}*)"
        for check in all_checks().values()
        for spec in check.metrics
        if not spec.name.startswith(METRIC_PREFIX[check.layer]) and spec.name not in NETWORK_LEGACY
    )
    assert wrong == []
    legacy = {spec.name for check in all_checks().values() for spec in check.metrics} & NETWORK_LEGACY
    assert legacy == NETWORK_LEGACY, "a legacy name is gone: drop it from NETWORK_LEGACY"
