"""The incidents background service of ``diag-collector serve``."""

from __future__ import annotations

import asyncio

from collector.serve_context import ServeContext

__all__ = ["start"]


def start(ctx: ServeContext) -> list[asyncio.Task[None]]:
    """Start this service's tasks in the serving loop; serve cancels them on shutdown."""
    return []
