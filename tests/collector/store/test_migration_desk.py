"""Migration 0007 (service desk cases) from 0006 with existing emergency cases, on SQLite
and PostgreSQL: ``open`` becomes ``new``, every case is an automatic emergency case, an
acknowledged case's owner is its first responder, the new states and the service_manager
role are accepted afterwards, and the old ones refused; then down again."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from collector.store import Scope, Store
from collector.store.cases import CaseRepo
from collector.store.engine import create_engine
from collector.store.migrate import alembic_config, drift, upgrade
from tests.collector.store.test_migrations import empty_url

__all__ = ["empty_url"]

CASE = (
    "INSERT INTO cases (id, customer_id, number, incident_id, kind, title, severity, state, owner, hosts,"
    " causes, members, incident, onset_at, detected_at, opened_at, updated_at, acknowledged_at, resolved_at,"
    " closed_at, reopened) VALUES (:id, 1, :n, :inc, 'DEGRADATION', 'disk full', 'CRIT', :state, :owner,"
    " '[\"db1\"]', '[]', '[]', '{}', 1, 1, 1, 1, NULL, NULL, NULL, 0)"
)


def test_0007_moves_existing_emergency_cases_to_the_desk_states(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0006_report_version_token_expiry")
            conn.execute(
                sa.text(
                    "INSERT INTO customers (slug, name, timezone, settings, created_at) "
                    "VALUES ('acme', 'acme', 'UTC', '{}', 0)"
                )
            )
            for n, state, owner in ((1, "open", None), (2, "acknowledged", "li"), (3, "closed", "wang")):
                conn.execute(
                    sa.text(CASE),
                    {"id": f"C-acme-{n}", "n": n, "inc": f"i{n}", "state": state, "owner": owner},
                )
                # timeline and incident rows point at the case (SQLite rebuilds the table under them)
                conn.execute(
                    sa.text(
                        "INSERT INTO case_events (case_id, ts, kind, actor, text, data) "
                        "VALUES (:id, 1, 'opened', NULL, 'opened', '{}')"
                    ),
                    {"id": f"C-acme-{n}"},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO case_incidents (incident_id, case_id, linked_at) VALUES (:i, :id, 1)"
                    ),
                    {"i": f"i{n}", "id": f"C-acme-{n}"},
                )
        upgrade(engine)
        assert drift(engine) == []
        store = Store(engine)
        cases = {c.id: c for c in CaseRepo(store).list(Scope.everything())}
        assert {k: (c.state, c.type, c.channel, c.first_responder, c.owner) for k, c in cases.items()} == {
            "C-acme-1": ("new", "emergency", "automatic", None, None),
            "C-acme-2": ("acknowledged", "emergency", "automatic", "li", "li"),
            "C-acme-3": ("closed", "emergency", "automatic", "wang", "wang"),
        }
        CaseRepo(store).acknowledge(Scope.everything(), "C-acme-1", actor="li", now=2)
        with engine.begin() as conn:  # the longest new state fits; the old one is refused
            conn.execute(sa.text("UPDATE cases SET state = 'waiting_on_customer' WHERE id = 'C-acme-2'"))
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE cases SET state = 'open' WHERE id = 'C-acme-2'"))
        except sa.exc.IntegrityError:
            pass
        else:
            raise AssertionError("the old state 'open' was accepted")
        store.create_api_token("mgr", "service_manager")  # the role's check constraint allows it
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006_report_version_token_expiry")
            states = {str(k): str(v) for k, v in conn.execute(sa.text("SELECT id, state FROM cases"))}
        assert states == {"C-acme-1": "acknowledged", "C-acme-2": "open", "C-acme-3": "closed"}
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM case_events")).scalar_one()
            if conn.dialect.name == "sqlite":
                assert conn.execute(sa.text("PRAGMA foreign_key_check")).all() == []
        assert events == 4  # three openings and the acknowledgement, kept through both rebuilds
    finally:
        engine.dispose()
