"""The survey goes to the customer's contact (contacts table: e-mail and preferred language)
when the case's contact names one; otherwise to the address in the case's contact. Real store
(SQLite and PostgreSQL); another customer's contact of the same name is never used."""

from __future__ import annotations

import json

from collector.desk.followup import Contact, SurveyConfig, contact_for
from collector.store import Store
from collector.store.cases import CaseRepo
from collector.store.customer_file import CustomerFileRepo
from collector.store.outbox import OutboxRepo
from collector.store.queries import Scope
from tests.collector.people import auth
from tests.collector.surveys.app import make_desk
from tests.collector.surveys.helpers import resolved_case

ALL = Scope.everything()


def add_contact(store: Store, customer: str, name: str, email: str | None, language: str) -> None:
    values = {"name": name, "role": "IT", "email": email, "phone": None, "language": language}
    CustomerFileRepo(store).add_contact(ALL, customer, values, now=0.0)


def contact_of(store: Store, case_contact: str | None, customer: str = "acme") -> Contact | None:
    case_id = resolved_case(store, customer, contact=case_contact)
    return contact_for(store, CaseRepo(store).get(ALL, case_id))


def test_a_named_contact_gives_its_address_and_language(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    add_contact(store, "acme", "王伟", "wang@acme.example", "zh-CN")
    add_contact(store, "acme", "Li Na", "li.new@acme.example", "en")
    assert contact_of(store, "王伟") == Contact("wang@acme.example", "zh-CN")
    # The name part of an address names the contact: the stored address wins.
    assert contact_of(store, "Li Na <li.old@acme.example>") == Contact("li.new@acme.example", "en")


def test_a_named_contact_without_email_keeps_the_cases_address(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    add_contact(store, "acme", "Zhao Lei", None, "en")
    assert contact_of(store, "Zhao Lei <zhao@acme.example>") == Contact("zhao@acme.example", "en")
    assert contact_of(store, "Zhao Lei") is None


def test_unknown_names_fall_back_to_the_cases_contact(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    assert contact_of(store, "Wang Wei <wang@acme.example>") == Contact("wang@acme.example", None)
    assert contact_of(store, "王伟") is None
    assert contact_of(store, None) is None


def test_another_customers_contact_is_never_used(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    store.enroll_agent("globex", "erp1", "globex-erp1")
    add_contact(store, "globex", "王伟", "wang@globex.example", "zh-CN")
    assert contact_of(store, "王伟", "acme") is None
    assert contact_of(store, "王伟", "globex") == Contact("wang@globex.example", "zh-CN")


def test_resolving_through_the_api_mails_the_named_contact_in_their_language(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    store.enroll_agent("globex", "erp1", "globex-erp1")
    desk = make_desk(store, SurveyConfig())
    add_contact(store, "acme", "Li Na", "li@acme.example", "en")  # customer's language: zh-CN
    opened = desk.client.post(
        "/api/v1/cases",
        json={
            "customer": "acme",
            "type": "consultation",
            "channel": "hotline",
            "title": "t",
            "contact": "Li Na",
        },
        headers=auth(desk.tokens["engineer"]),
    )
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["id"]
    response = desk.client.post(f"/api/v1/cases/{case_id}/resolve", headers=auth(desk.tokens["engineer"]))
    assert response.status_code == 200, response.text
    [payload] = [json.loads(r.payload) for r in OutboxRepo(store).entries() if r.kind == "survey"]
    assert (payload["case_id"], payload["contact"], payload["language"]) == (case_id, "li@acme.example", "en")
