"""service desk cases: every kind of request on the one case object (issue 14).

Cases get a type, routine subtype, channel, description, contact, first responder and the
product decision of adaptive/perfective work; a case opened by a person has no incident.
States become new / acknowledged / in_progress / waiting_on_customer / resolved /
follow_up / closed: existing ``open`` cases become ``new``, every existing case is an
``emergency`` case from channel ``automatic``, and an acknowledged case's owner is its
first responder. Engineers log time on cases (``case_time_entries``). API tokens may have
the ``service_manager`` role (no customer, like engineers).

Revision ID: 0007_desk_cases
Revises: 0006_report_version_token_expiry
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0007_desk_cases"
down_revision: str | None = "0006_report_version_token_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_STATES = (
    "state IN ('new', 'acknowledged', 'in_progress', 'waiting_on_customer', 'resolved',"
    " 'follow_up', 'closed')"
)
OLD_STATES = "state IN ('open', 'acknowledged', 'resolved', 'closed')"


CHILDREN = ("case_events", "case_incidents")
"""Tables whose rows point at ``cases`` (foreign keys)."""


@contextmanager
def _children_set_aside() -> Iterator[None]:
    """SQLite: batch mode rebuilds ``cases`` (copy, drop, rename) while other tables'
    rows point at it, and ``PRAGMA foreign_keys`` cannot be turned off inside the
    migration's transaction (deferring does not help: the drop's violations are never
    taken back by the rename). So the children's rows wait in temporary tables while
    ``cases`` is rebuilt, and come back after. PostgreSQL alters in place."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for table in CHILDREN:
            op.execute(f"CREATE TEMP TABLE _keep_{table} AS SELECT * FROM {table}")
            op.execute(f"DELETE FROM {table}")
    yield
    if sqlite:
        for table in CHILDREN:
            op.execute(f"INSERT INTO {table} SELECT * FROM _keep_{table}")
            op.execute(f"DROP TABLE _keep_{table}")


def upgrade() -> None:
    with _children_set_aside():
        _upgrade_cases()
    _upgrade_rest()


def _upgrade_cases() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_constraint(op.f("ck_cases_state"), type_="check")
        batch.alter_column("state", existing_type=sa.String(length=16), type_=sa.String(length=32))
        batch.alter_column("incident_id", existing_type=sa.String(length=64), nullable=True)
        batch.alter_column("kind", existing_type=sa.String(length=32), nullable=True)
        batch.add_column(sa.Column("type", sa.String(length=16), nullable=False, server_default="emergency"))
        batch.add_column(sa.Column("subtype", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("channel", sa.String(length=16), nullable=False, server_default="automatic")
        )
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("contact", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("first_responder", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("decision_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("release", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("upgrade_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_cases_upgrade_id_product_upgrades"), "product_upgrades", ["upgrade_id"], ["id"]
        )
        batch.create_index("ix_cases_customer_type_opened", ["customer_id", "type", "opened_at"])
    op.execute("UPDATE cases SET state = 'new' WHERE state = 'open'")
    op.execute("UPDATE cases SET first_responder = owner WHERE owner IS NOT NULL")
    with op.batch_alter_table("cases") as batch:
        # The defaults served the existing rows only: every writer names type and channel.
        batch.alter_column("type", existing_type=sa.String(length=16), server_default=None)
        batch.alter_column("channel", existing_type=sa.String(length=16), server_default=None)
        batch.create_check_constraint("state", NEW_STATES)


def _upgrade_rest() -> None:
    op.create_table(
        "case_time_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("engineer", sa.String(length=200), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("activity", sa.String(length=500), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("work_date", sa.Date(), nullable=False),
        sa.Column("logged_by", sa.String(length=200), nullable=False),
        sa.Column("logged_at", sa.Double(), nullable=False),
        sa.CheckConstraint("minutes > 0 AND minutes <= 1440", name=op.f("ck_case_time_entries_minutes")),
        sa.CheckConstraint("mode IN ('onsite', 'remote')", name=op.f("ck_case_time_entries_mode")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_time_entries_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_time_entries")),
    )
    op.create_index("ix_case_time_entries_case", "case_time_entries", ["case_id", "work_date"])

    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("ck_api_tokens_role"), type_="check")
        batch.drop_constraint(op.f("ck_api_tokens_scoped"), type_="check")
        batch.create_check_constraint(
            "role", "role IN ('engineer', 'customer_admin', 'viewer', 'service_manager')"
        )
        batch.create_check_constraint(
            "scoped", "role IN ('engineer', 'service_manager') OR customer_id IS NOT NULL"
        )


def downgrade() -> None:
    op.execute("DELETE FROM api_tokens WHERE role = 'service_manager'")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("ck_api_tokens_role"), type_="check")
        batch.drop_constraint(op.f("ck_api_tokens_scoped"), type_="check")
        batch.create_check_constraint("role", "role IN ('engineer', 'customer_admin', 'viewer')")
        batch.create_check_constraint("scoped", "role = 'engineer' OR customer_id IS NOT NULL")
    op.drop_index("ix_case_time_entries_case", table_name="case_time_entries")
    op.drop_table("case_time_entries")
    # Cases a person opened have no incident: they cannot exist before this revision.
    op.execute("DELETE FROM case_events WHERE case_id IN (SELECT id FROM cases WHERE incident_id IS NULL)")
    op.execute("DELETE FROM cases WHERE incident_id IS NULL")
    with _children_set_aside():
        _downgrade_cases()


def _downgrade_cases() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_constraint(op.f("ck_cases_state"), type_="check")
    op.execute(
        "UPDATE cases SET state = CASE WHEN state IN ('new', 'in_progress', 'waiting_on_customer')"
        " THEN 'open' WHEN state = 'follow_up' THEN 'resolved' ELSE state END"
    )
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_customer_type_opened")
        batch.drop_constraint(op.f("fk_cases_upgrade_id_product_upgrades"), type_="foreignkey")
        for column in (
            "upgrade_id",
            "release",
            "decision_text",
            "decision",
            "first_responder",
            "contact",
            "description",
            "channel",
            "subtype",
            "type",
        ):
            batch.drop_column(column)
        batch.alter_column("kind", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("incident_id", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("state", existing_type=sa.String(length=32), type_=sa.String(length=16))
        batch.create_check_constraint("state", OLD_STATES)
