"""Product versions out of inventory documents, and the changes between two of them.

The agent's inventory document carries a ``products`` entry, either a mapping
``{name: version}`` or a list of ``{"name": ..., "version": ...}`` objects; both are
accepted. Anything else under ``products`` is ignored rather than rejected: the
document's shape grows with the products a vendor tracks.

>>> extract_products({"products": {"erp": "4.2.0", "db": "15.4"}})
{'db': '15.4', 'erp': '4.2.0'}
>>> extract_products({"products": [{"name": "erp", "version": "4.3.0"}, {"name": "x"}]})
{'erp': '4.3.0'}
>>> product_changes({"erp": "4.2.0", "db": "15.4"}, {"erp": "4.3.0", "mq": "3.1"})
[('db', '15.4', None), ('erp', '4.2.0', '4.3.0'), ('mq', None, '3.1')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PRODUCT_TEXT_MAX", "extract_products", "product_changes"]

PRODUCT_TEXT_MAX = 200
"""The longest product name or version an upgrade record holds (its columns' length)."""

ProductChange = tuple[str, str | None, str | None]


def extract_products(document: Mapping[str, Any]) -> dict[str, str]:
    """``{product: version}`` from an inventory document (empty when it has none)."""
    raw = document.get("products")
    found: dict[str, str] = {}
    if isinstance(raw, Mapping):
        for name, version in raw.items():
            if isinstance(name, str) and isinstance(version, str | int | float):
                found[name] = str(version)
    elif isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, Mapping):
                name, version = entry.get("name"), entry.get("version")
                if isinstance(name, str) and isinstance(version, str | int | float):
                    found[name] = str(version)
    return dict(sorted(found.items()))


def product_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[ProductChange]:
    """Every product whose version differs, sorted by name: (product, from, to).

    ``from`` is None for a product that appeared, ``to`` None for one that went away.
    """
    changes: list[ProductChange] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changes.append((name, old, new))
    return changes
