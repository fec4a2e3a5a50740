"""The collector's store: SQLAlchemy Core over SQLite (embedded default) or PostgreSQL.

>>> from collector.store import Store, Scope
>>> Scope.everything().customer is None
True
"""

from collector.store import tables as _tables  # noqa: F401  (every table on the one metadata, whatever is imported)
from collector.store.errors import AgentRevoked, Conflict, DatabaseError, NotFound, StoreError, UnknownAgent
from collector.store.queries import (
    AgentInfo,
    GapInfo,
    HostDetail,
    HostSummary,
    QuarantinedInfo,
    ResultInfo,
    Scope,
    UpgradeInfo,
)
from collector.store.retention import RetentionPolicy
from collector.store.store import ROLES, ApiPrincipal, Role, Store, customer_agent_id
from collector.store.types import (
    AgentIdentity,
    GapRow,
    HealthRow,
    HostFactsRow,
    IngestBatch,
    InventoryRow,
    PointRow,
    ResultRow,
)

__all__ = [
    "ROLES",
    "AgentIdentity",
    "AgentInfo",
    "AgentRevoked",
    "ApiPrincipal",
    "Conflict",
    "DatabaseError",
    "GapInfo",
    "GapRow",
    "HealthRow",
    "HostDetail",
    "HostFactsRow",
    "HostSummary",
    "IngestBatch",
    "InventoryRow",
    "NotFound",
    "PointRow",
    "QuarantinedInfo",
    "ResultInfo",
    "ResultRow",
    "RetentionPolicy",
    "Role",
    "Scope",
    "Store",
    "StoreError",
    "UnknownAgent",
    "UpgradeInfo",
    "customer_agent_id",
]
