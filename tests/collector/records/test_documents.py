"""Customer documents over real HTTP and a real store (SQLite and PostgreSQL): upload, list,
download, delete per role and for another customer's people; the type told by the bytes;
a bad upload is a clear 4xx and stores nothing."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.store import Store
from collector.store.schema_records import customer_documents
from tests.collector.people import auth, role_tokens

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\x00\x01 binary\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 20


def office(main: str, *, macros: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(main, "<document/>")
        if macros:
            archive.writestr("word/vbaProject.bin", b"\x00macro")
    return buffer.getvalue()


@pytest.fixture
def setup(store: Store) -> tuple[TestClient, dict[str, str]]:
    store.enroll_agent("acme", "db1", "acme-db1")
    store.enroll_agent("globex", "erp1", "globex-erp1")
    tokens = role_tokens(store, "engineer", "manager", "acme admin", "acme viewer", "globex admin")
    return TestClient(create_app(store)), tokens


def upload(client: TestClient, token: str, name: str, data: bytes, customer: str = "acme") -> Any:
    return client.post(
        f"/api/v1/customers/{customer}/documents",
        params={"name": name},
        content=data,
        headers={**auth(token), "Content-Type": "application/octet-stream"},
    )


def stored(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(customer_documents)).scalar_one())


def test_upload_list_download_delete(setup: tuple[TestClient, dict[str, str]], store: Store) -> None:
    client, t = setup
    made = upload(client, t["acme admin"], "验收单 2026.pdf", PDF)
    assert made.status_code == 201, made.text
    doc = made.json()
    assert (doc["media_type"], doc["size"], doc["sha256"], doc["uploaded_by"]) == (
        "application/pdf", len(PDF), hashlib.sha256(PDF).hexdigest(), "acme-admin",
    )  # fmt: skip
    sheet = upload(client, t["engineer"], "inventory.xlsx", office("xl/workbook.xml")).json()
    assert sheet["media_type"].endswith("spreadsheetml.sheet")
    notes = upload(client, t["manager"], "notes.csv", "host,owner\ndb1,王\n".encode()).json()
    assert notes["media_type"] == "text/csv; charset=utf-8"
    listed = client.get("/api/v1/customers/acme/documents", headers=auth(t["acme viewer"])).json()
    assert [d["name"] for d in listed] == ["notes.csv", "inventory.xlsx", "验收单 2026.pdf"]
    got = client.get(doc["download"], headers=auth(t["acme viewer"]))
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert (
        got.headers["x-content-type-options"] == "nosniff"
        and "sandbox" in got.headers["content-security-policy"]
    )
    assert (
        "attachment" in got.headers["content-disposition"]
        and "%E9%AA%8C" in got.headers["content-disposition"]
    )
    assert client.delete(f"/api/v1/documents/{doc['id']}", headers=auth(t["acme viewer"])).status_code == 403
    gone = client.delete(f"/api/v1/documents/{doc['id']}", headers=auth(t["acme admin"]))
    assert gone.status_code == 200 and gone.json()["id"] == doc["id"]
    assert client.get(doc["download"], headers=auth(t["engineer"])).status_code == 404
    assert client.delete(f"/api/v1/documents/{sheet['id']}", headers=auth(t["manager"])).status_code == 200
    assert stored(store) == 1


def test_another_customers_people(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, t = setup
    doc = upload(client, t["engineer"], "contract.pdf", PDF).json()
    other = t["globex admin"]
    assert client.get(doc["download"], headers=auth(other)).status_code == 404
    assert client.delete(f"/api/v1/documents/{doc['id']}", headers=auth(other)).status_code == 404
    assert client.get("/api/v1/customers/acme/documents", headers=auth(other)).status_code == 403
    assert upload(client, other, "x.pdf", PDF).status_code == 403
    assert upload(client, t["acme viewer"], "x.pdf", PDF).status_code == 403
    assert client.get("/api/v1/customers/globex/documents", headers=auth(other)).json() == []
    assert upload(client, t["engineer"], "x.pdf", PDF, customer="nobody").status_code == 404
    assert client.get(doc["download"]).status_code == 401


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("page.html", b"<!doctype html><script>alert(1)</script>", 415, "not an allowed document"),
        ("readme.txt", b"hello <script>alert(1)</script>", 415, "not an allowed document"),
        ("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415, "not an allowed document"),
        ("tool.exe", b"MZ\x90\x00\x03" + b"\x00" * 60, 415, "not an allowed document"),
        ("archive.zip", b"PK\x03\x04" + b"\x00" * 30, 415, "not an allowed document"),
        ("contract.docx", PDF, 422, "must end in .pdf"),
        ("contract", PDF, 422, "not no extension"),
        ("../../etc/passwd.pdf", PDF, 422, "name:"),
        ("empty.pdf", b"", 422, "empty"),
        ("macro.docx", office("word/document.xml", macros=True), 415, "macros"),
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(
    setup: tuple[TestClient, dict[str, str]], store: Store, name: str, data: bytes, status: int, words: str
) -> None:
    client, t = setup
    response = upload(client, t["engineer"], name, data)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert stored(store) == 0


def test_size_limit(setup: tuple[TestClient, dict[str, str]], store: Store) -> None:
    client, t = setup
    big = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024)
    response = upload(client, t["engineer"], "big.pdf", big)
    assert response.status_code == 413 and "bytes at most" in response.json()["detail"]
    assert stored(store) == 0
    # the NUL guard of JSON bodies does not apply to a document's raw bytes, and still does elsewhere
    assert upload(client, t["engineer"], "scan.png", PNG).status_code == 201


def test_diagctl_documents(tmp_path: Any) -> None:
    from tests.collector.http_server import serving
    from tests.collector.records.test_service_records import diagctl

    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    store.enroll_agent("acme", "db1", "acme-db1")
    token = store.create_api_token("li", "engineer")
    source = tmp_path / "acceptance.pdf"
    source.write_bytes(PDF)
    try:
        with serving(create_app(store)) as url:
            code, text = diagctl(url, token, "documents", "upload", str(source), "--customer", "acme")
            assert code == 0 and "acceptance.pdf" in text and "application/pdf" in text
            code, text = diagctl(url, token, "documents", "list", "--customer", "acme", "--format", "json")
            assert code == 0 and [d["name"] for d in json.loads(text)] == ["acceptance.pdf"]
            target = tmp_path / "copy.pdf"
            code, _ = diagctl(url, token, "documents", "download", "1", "-o", str(target))
            assert code == 0 and target.read_bytes() == PDF
            html = tmp_path / "page.txt"
            html.write_bytes(b"<html><script>x</script>")
            code, _ = diagctl(url, token, "documents", "upload", str(html), "--customer", "acme")
            assert code == 1
            code, text = diagctl(url, token, "documents", "delete", "1")
            assert code == 0 and "deleted document 1" in text
    finally:
        store.close()
