"""Finds every check declaration and builds the metric catalogue.

A check is found by its type: any module-level :class:`~checks.api.Check` instance in
a module under ``checks/<layer>/``. Names are never used to find checks.

>>> checks = all_checks()
>>> len({c.layer for c in checks.values()})
5
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import MappingProxyType, ModuleType
from typing import Any

from checks.api import Check, Layer, MetricSpec

__all__ = ["all_checks", "catalogue", "checks_in_module"]

LAYER_PACKAGES = tuple(f"checks.{layer.value}" for layer in Layer)


def checks_in_module(module: ModuleType) -> list[Check[Any, Any]]:
    return [value for value in vars(module).values() if isinstance(value, Check)]


@cache
def all_checks() -> MappingProxyType[str, Check[Any, Any]]:
    """Every built-in check by name, in layer order then name."""
    found: dict[str, Check[Any, Any]] = {}
    for package_name in LAYER_PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package_name}.{info.name}")
            for check in checks_in_module(module):
                if check.name in found:
                    raise RuntimeError(f"check {check.name!r} is declared twice ({module.__name__})")
                found[check.name] = check
    order = {layer: i for i, layer in enumerate(Layer)}
    return MappingProxyType(dict(sorted(found.items(), key=lambda kv: (order[kv[1].layer], kv[0]))))


@cache
def catalogue() -> MappingProxyType[str, MetricSpec]:
    """Every metric any check may emit, by name. Two checks sharing a name share its spec."""
    specs: dict[str, MetricSpec] = {}
    for check in all_checks().values():
        for spec in check.metrics:
            existing = specs.get(spec.name)
            if existing is not None and existing != spec:
                raise RuntimeError(f"metric {spec.name!r} is declared differently by two checks")
            specs[spec.name] = spec
    return MappingProxyType(specs)
