"""The fleet page over plain HTTP (SQLite and PostgreSQL): paging, filters, the totals row,
each role and another customer's people; host names quoted in links; the two catalogues."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

import collector.web.fleet as fleet_module
from collector.store import IngestBatch, Store
from tests.collector.store.test_store import result
from tests.collector.web.seed import seed
from tests.collector.web.test_pages import signed_in

I18N = Path(fleet_module.__file__).parent / "i18n"
TEMPLATES = Path(fleet_module.__file__).parent / "templates"
ODD_HOST = "a/b?c#d 网"
"""Every character that breaks an unquoted link: a path separator, a query, a fragment,
a space, non-ASCII. (A name that itself looks quoted, ``%2F``, is in the browser test:
Starlette's TestClient decodes a path twice, a real server once.)"""


@pytest.fixture
def site(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, dict[str, str]]]:
    """The dashboard seed (acme: CRIT + case, globex: OK) plus three more customers; 2 per page."""
    tokens = seed(store)
    for customer, sev in (("hooli", "WARN"), ("initech", "OK"), ("umbrella", None)):
        agent, _ = store.enroll_agent(customer, host="h1", agent_id=f"{customer}-h1")
        if sev:
            store.ingest(agent, IngestBatch(1, 1, [result(1, "host.load", sev)], [], [], []))
    monkeypatch.setattr(fleet_module, "PAGE_SIZE", 2)
    yield store, tokens


def _customers(html: str) -> list[str]:
    return re.findall(r'<tr data-customer="([^"]+)">', html)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)">', html)
    return unescape(found.group(1)) if found else None


def test_pages_walk_the_fleet_neediest_first_under_totals_of_the_whole_fleet(site) -> None:
    store, tokens = site
    engineer = signed_in(store, tokens["engineer"])
    seen: list[str] = []
    url: str | None = "/fleet"
    pages = 0
    while url is not None:
        page = engineer.get(url)
        assert page.status_code == 200
        names = _customers(page.text)
        assert 1 <= len(names) <= 2
        seen += names
        assert 'data-total="1"' in page.text and "Whole fleet (5 customers)" in page.text
        assert (_link(page.text, "prev") is None) == (pages == 0)
        url = _link(page.text, "next")
        pages += 1
    assert pages == 3
    assert seen == ["acme", "hooli", "globex", "initech", "umbrella"]  # CRIT, WARN, OK.., no result
    data = engineer.get("/fleet.json?page=2").json()
    assert [c["customer"] for c in data["customers"]] == ["globex", "initech"]
    assert (data["page"], data["pages"], data["matched"], data["customers_total"]) == (2, 3, 5, 5)
    assert data["total"]["hosts"] == 6 and data["total"]["hosts_by_worst"] == {
        "OK": 3,
        "WARN": 1,
        "UNKNOWN": 0,
        "CRIT": 1,
    }
    assert data["total"]["layers"]["storage"]["counts"] == {"CRIT": 1, "OK": 1}
    # Past the last page: no rows, a link back, still 200.
    last = engineer.get("/fleet?page=9")
    assert last.status_code == 200 and _customers(last.text) == []
    assert "No customer matches these filters." in last.text


def test_filters_by_name_and_worst_state_keep_the_totals_and_the_filters_in_links(site) -> None:
    store, tokens = site
    engineer = signed_in(store, tokens["engineer"])
    assert [c["customer"] for c in engineer.get("/fleet.json?state=OK").json()["customers"]] == [
        "globex",
        "initech",
    ]
    ok = engineer.get("/fleet?state=OK")
    assert _link(ok.text, "next") is None  # two match: one page
    assert [c["customer"] for c in engineer.get("/fleet.json?state=NONE").json()["customers"]] == ["umbrella"]
    assert [c["customer"] for c in engineer.get("/fleet.json?customer=INI").json()["customers"]] == [
        "initech"
    ]
    page = engineer.get("/fleet?customer=e&page=1")  # acme, globex, initech, umbrella
    assert _customers(page.text) == ["acme", "globex"]
    assert _link(page.text, "next") == "/fleet?customer=e&page=2"
    assert 'data-live="/fleet.json?customer=e&amp;page=1"' in page.text
    assert "Whole fleet (5 customers)" in page.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("state=PURPLE", "Invalid value for state"),
        ("page=0", "Invalid page"),
        ("page=x", "Invalid page"),
        ("page=-1", "Invalid page"),
        ("page=99999999999999999999", "Invalid page"),
        ("customer=" + "x" * 201, "customer is too long"),
    ],
)
def test_bad_filters_are_a_400_page_naming_the_field(site, query: str, message: str) -> None:
    store, tokens = site
    engineer = signed_in(store, tokens["engineer"])
    for path in ("/fleet", "/fleet.json"):
        response = engineer.get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.status_code)
        assert message in response.text and "Traceback" not in response.text


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_a_customers_people_page_only_through_their_customer(site, role: str) -> None:
    store, tokens = site
    client = signed_in(store, tokens[role])
    data = client.get("/fleet.json").json()
    assert [c["customer"] for c in data["customers"]] == ["acme"]
    assert (data["customers_total"], data["total"]["hosts"]) == (1, 2)
    page = client.get("/fleet?customer=globex")
    assert _customers(page.text) == [] and 'href="/fleet/globex"' not in page.text
    assert "Whole fleet (1 customers)" in page.text


def test_another_customers_admin_sees_only_their_own_totals(site) -> None:
    store, tokens = site
    globex = signed_in(store, tokens["globex"])
    data = globex.get("/fleet.json?customer=acme").json()
    assert data["customers"] == [] and data["matched"] == 0
    assert (
        data["total"]["customer"] == "" and data["total"]["hosts"] == 1 and data["total"]["cases_active"] == 0
    )


def test_host_names_are_quoted_in_every_link_and_their_pages_open(site) -> None:
    store, tokens = site
    agent, _ = store.enroll_agent("acme", host=ODD_HOST, agent_id="acme-odd")
    store.ingest(agent, IngestBatch(1, 1, [result(1, "host.load", "WARN")], [], [], []))
    engineer = signed_in(store, tokens["engineer"])
    listing = engineer.get("/fleet/acme").text
    quoted = "/hosts/acme/a%2Fb%3Fc%23d%20%E7%BD%91"
    assert f'href="{quoted}"' in listing
    host = engineer.get(quoted)
    assert host.status_code == 200
    assert f"<h1>{ODD_HOST} " in unescape(host.text)
    assert 'href="/fleet/acme"' in host.text
    # Another customer's admin: the same 404 as a host that does not exist.
    assert signed_in(store, tokens["globex"]).get(quoted).status_code == 404
    assert engineer.get("/hosts/acme/a%2Fnope").status_code == 404


def _catalogue(name: str) -> dict[str, str]:
    data = json.loads((I18N / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_two_catalogues_have_the_same_keys_no_empty_values_and_every_key_a_template_uses() -> None:
    en, zh = _catalogue("en.json"), _catalogue("zh-CN.json")
    assert sorted(set(en) ^ set(zh)) == []
    for lang, data in (("en", en), ("zh-CN", zh)):
        empty = [k for k, v in data.items() if not isinstance(v, str) or not v.strip()]
        assert empty == [], f"{lang}: empty values for {empty}"
    for k in en:  # the same placeholders in both languages
        assert sorted(re.findall(r"\{(\w+)\}", en[k])) == sorted(re.findall(r"\{(\w+)\}", zh[k])), k
    used = {
        key
        for path in TEMPLATES.glob("*.html")
        for key in re.findall(r'f\.t\(\s*["\'](web\.[a-z0-9_.]+)["\']', path.read_text(encoding="utf-8"))
    }
    prefixes = {key for key in used if key.endswith((".", "_"))}  # "web.state." ~ value
    assert all(any(k.startswith(p) for k in en) for p in prefixes), prefixes
    used -= prefixes
    assert used and sorted(used - set(en)) == []
