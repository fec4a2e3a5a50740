"""incidents, emergency cases, maintenance windows, detector state.

Revision ID: 0003_cases
Revises: 0002_ingest_log
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003_cases"
down_revision: str | None = "0002_ingest_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
