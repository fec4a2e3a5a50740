"""What ``diag-collector serve`` hands to its background services."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.cli.config import CollectorConfig
    from collector.ingest.grpc_service import AgentStreamService
    from collector.ingest.metrics import CollectorMetrics
    from collector.store import Store

__all__ = ["ServeContext"]


@dataclass(frozen=True, slots=True)
class ServeContext:
    """The serving process's shared parts.

    A background service's ``start(ctx)`` returns the asyncio tasks it runs; ``serve``
    cancels them on shutdown, after ``stop`` is set.
    """

    store: Store
    config: CollectorConfig
    grpc: AgentStreamService
    metrics: CollectorMetrics
    stop: asyncio.Event
