"""``diagctl`` commands: cases. Registered by :func:`collector.diagctl.build_parser`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register"]


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """Add this module's commands; ``add(name, func, help, owner)`` as in build_parser."""
