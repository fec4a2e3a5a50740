"""What happens to a batch once it is durable: the hook that detection hangs on.

The store calls every registered :class:`IngestObserver` after a group commit, in the
process that committed it (the ingest worker, or the serving process when ingest runs
in-process), with the batches that stored new entries, each agent's in seq order. An
observer must be quick and must never raise into ingest: the store logs and counts an
observer's exception and carries on, because the batch is already durable and acked.

``tick`` is called about once a second from the same process, so an observer can act on
time passing (an agent that went silent, a maintenance window that ended).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collector.store.types import AgentIdentity, IngestBatch

__all__ = ["OBSERVER_FACTORY", "Committed", "IngestObserver"]

# ``module:function`` building the observer: ``function(store, config) -> IngestObserver | None``
# where ``config`` is the collector's CollectorConfig. The worker process imports it by name.
OBSERVER_FACTORY = "collector.emergency.live:make_observer"


@dataclass(frozen=True, slots=True)
class Committed:
    """One batch that stored new entries."""

    agent: AgentIdentity
    host_id: int
    stored_before: int
    """The agent's durable seq before this batch: entries at or below it were replays."""
    batch: IngestBatch


class IngestObserver(Protocol):
    def observe(self, committed: Sequence[Committed]) -> None: ...

    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...


def build_observer(store: Any, config: Any) -> IngestObserver | None:
    """Import :data:`OBSERVER_FACTORY` and build the observer for ``store``."""
    import importlib

    module, _, name = OBSERVER_FACTORY.partition(":")
    factory = getattr(importlib.import_module(module), name)
    observer: IngestObserver | None = factory(store, config)
    return observer
