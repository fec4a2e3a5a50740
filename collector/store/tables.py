"""Every table of the store on one :data:`metadata`: the core tables (:mod:`.schema`) and
those of later features (``schema_*``), each of which defines its tables on that metadata.

Import :data:`metadata` from here (migrations, the drift check, tests): importing it
from :mod:`.schema` alone would see only the core tables.
"""

from collector.store import (
    schema_cases,
    schema_contracts,
    schema_desk,
    schema_fleet,
    schema_ingest_log,
    schema_inspections,
    schema_outbox,
    schema_records,
    schema_sessions,
    schema_surveys,
)
from collector.store.schema import metadata

__all__ = [
    "metadata",
    "schema_cases",
    "schema_contracts",
    "schema_desk",
    "schema_fleet",
    "schema_ingest_log",
    "schema_inspections",
    "schema_outbox",
    "schema_records",
    "schema_sessions",
    "schema_surveys",
]
