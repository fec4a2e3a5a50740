"""Tables: incidents, emergency cases, maintenance windows, detector state.

Defined on :data:`collector.store.schema.metadata` (imported at the end of that module), so
the migration drift test covers them.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401

from collector.store.schema import metadata  # noqa: F401
