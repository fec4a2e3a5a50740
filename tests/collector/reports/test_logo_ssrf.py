"""A customer's logo cannot make the collector fetch a URL or read a local file (issue 13, High #1).

Every test serves a real HTTP server on loopback that counts the requests it sees, and
renders real PDFs with WeasyPrint; text is read back with pdftotext (poppler-utils).
"""

from __future__ import annotations

import base64
import http.server
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.reports import (
    Customer,
    FaultAnalysisReport,
    InspectionReport,
    ReportError,
    clean_logo,
    load_logo,
    render_fault_analysis,
    render_inspection,
)
from collector.reports.render import _pdf
from collector.reports.svg_logo import SvgLogoError, sanitize_svg
from collector.store import Store

SVG = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
SECRET_TEXT = "TOPSECRET-7f3a-LOCAL-FILE"


class _Counting(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text y="9">FETCHED</text></svg>'
        )
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server; yields (base URL, the paths it was asked for)."""
    seen: list[str] = []
    handler = type("Handler", (_Counting,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def secret_svg(tmp_path: Path) -> Path:
    path = tmp_path / "secret.svg"
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40">'
        f'<text x="0" y="30" font-size="20">{SECRET_TEXT}</text></svg>'
    )
    return path


def _variants(url: str, file_url: str) -> list[tuple[str, bytes]]:
    """The attack variants of issue 13: each tries to fetch ``url`` (or read ``file_url``)."""
    raw = {
        "image href double quotes": f'<svg {SVG}><image href="{url}/a" width="9" height="9"/></svg>',
        "image href single quotes": f"<svg {SVG}><image href='{url}/b' width='9' height='9'/></svg>",
        "image xlink:href": f'<svg {SVG}><image xlink:href="{url}/c" width="9" height="9"/></svg>',
        "spaces around =": f'<svg {SVG}><image href  =  "{url}/d" width="9" height="9"/></svg>',
        "upper-case scheme": f'<svg {SVG}><image href="HTTP://{url[7:]}/e" width="9" height="9"/></svg>',
        "use of an external document": f'<svg {SVG}><use href="{url}/f.svg#x"/></svg>',
        "css url() in a style attribute": f'<svg {SVG}><rect style="fill:url({url}/g)"/></svg>',
        "css @import": f"<svg {SVG}><style>@import url({url}/h.css);</style><rect/></svg>",
        "presentation attribute url()": f"<svg {SVG}><rect fill='url( \"{url}/i\" )'/></svg>",
        "feImage filter": f'<svg {SVG}><filter id="f"><feImage href="{url}/j"/></filter></svg>',
        "foreignObject": (
            f'<svg {SVG}><foreignObject><img xmlns="http://www.w3.org/1999/xhtml" src="{url}/k"/>'
            "</foreignObject></svg>"
        ),
        "file:// image": f'<svg {SVG}><image href="{file_url}" width="400" height="40"/></svg>',
        "file:// single quotes xlink": f"<svg {SVG}><image xlink:href='{file_url}' width='400'/></svg>",
        "doctype entity": (
            f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "{file_url}">]>'
            f"<svg {SVG}><text>&x;</text></svg>"
        ),
    }
    return [(name, text.encode()) for name, text in raw.items()]


VARIANT_NAMES = [name for name, _ in _variants("http://h", "file:///f")]


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, timeout=60
    ).stdout.decode()


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_hostile_logo_is_refused_and_no_render_fetches_it(
    variant: str,
    server: tuple[str, list[str]],
    secret_svg: Path,
    inspection: InspectionReport,
    fault: FaultAnalysisReport,
    tmp_path: Path,
) -> None:
    url, seen = server
    logo = dict(_variants(url, secret_svg.as_uri()))[variant]
    with pytest.raises(ReportError, match=r"logo bytes: "):
        clean_logo(logo)
    # A logo stored before the upload check existed: every render path refuses it too.
    bad_inspection = replace(inspection, customer=replace(inspection.customer, logo=logo))
    bad_fault = replace(fault, customer=replace(fault.customer, logo=logo))
    for fmt in ("pdf", "html", "json"):
        with pytest.raises(ReportError):
            render_inspection(bad_inspection, fmt, "en")
        with pytest.raises(ReportError):
            render_fault_analysis(bad_fault, fmt, "en")
    assert seen == []


def test_renderer_fetches_nothing_but_data_uris(
    server: tuple[str, list[str]], secret_svg: Path, tmp_path: Path
) -> None:
    """Second line: HTML that names URLs anyway (a template bug, a stored logo) fetches none of them."""
    url, seen = server
    png = base64.b64encode(_png()).decode()
    html = f"""<html><head><style>body {{ background: url({url}/bg.png) }}</style>
    <link rel="stylesheet" href="{url}/style.css"></head><body>
    <p>visible text</p>
    <img src="{url}/logo.png"><img src='{secret_svg.as_uri()}'>
    <img src="data:image/png;base64,{png}">
    <svg {SVG} width="400" height="40">
      <image xlink:href="{secret_svg.as_uri()}" width="400" height="40"/>
      <image href="{url}/inline.svg" width="40" height="40"/>
    </svg></body></html>"""
    text = _pdftotext(_pdf(html), tmp_path)
    assert "visible text" in text
    assert SECRET_TEXT not in text
    assert "FETCHED" not in text
    assert seen == []


def test_a_file_logo_never_lands_in_the_pdf(
    secret_svg: Path, inspection: InspectionReport, tmp_path: Path
) -> None:
    """A logo whose image is a local file: refused, and the file's text is in no PDF."""
    logo = f"<svg {SVG} width='400' height='40'><image href='{secret_svg.as_uri()}'/></svg>".encode()
    report = replace(inspection, customer=replace(inspection.customer, logo=logo))
    with pytest.raises(ReportError, match="may only refer to its own elements"):
        render_inspection(report, "pdf", "en")
    # The same document without the logo check (as on the old code): the fetcher still refuses.
    data_uri = "data:image/svg+xml;base64," + base64.b64encode(logo).decode()
    html = f'<html><body><p>x</p><img src="{data_uri}"></body></html>'
    assert SECRET_TEXT not in _pdftotext(_pdf(html), tmp_path)


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x10\x20\x30" * 4 for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _nested_use_bomb(levels: int = 9, width: int = 10) -> bytes:
    """Each level uses the previous one ``width`` times: width**levels shapes from a small file."""
    parts = [f'<svg {SVG} width="180" height="44"><defs><path id="l0" d="M0 0h1v1z"/>']
    for level in range(1, levels + 1):
        uses = "".join(f'<use href="#l{level - 1}" x="{i}"/>' for i in range(width))
        parts.append(f'<g id="l{level}">{uses}</g>')
    parts.append(f'</defs><use href="#l{levels}"/></svg>')
    doc = "".join(parts).encode()
    return doc + b"<!--" + b" " * max(0, 97_000 - len(doc) - 7) + b"-->"


def test_nested_use_logo_is_refused_fast(inspection: InspectionReport) -> None:
    bomb = _nested_use_bomb()
    assert len(bomb) >= 90_000
    started = time.monotonic()
    with pytest.raises(ReportError, match=r"nested <use>"):
        clean_logo(bomb)
    report = replace(inspection, customer=replace(inspection.customer, logo=bomb))
    with pytest.raises(ReportError, match=r"nested <use>"):
        render_inspection(report, "pdf", "en")
    assert time.monotonic() - started < 5, "a logo's complexity is checked before anything is drawn"


@pytest.mark.parametrize(
    ("svg", "message"),
    [
        pytest.param(
            f"<svg {SVG}>" + "<g>" * 40 + "</g>" * 40 + "</svg>", "nested more than 32 deep", id="depth"
        ),
        pytest.param(f"<svg {SVG}>" + "<rect/>" * 6000 + "</svg>", "more than 5000 elements", id="elements"),
        pytest.param(
            f'<svg {SVG}><g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g></svg>',
            "cycle",
            id="use cycle",
        ),
        pytest.param(f"<svg {SVG}><rect onclick='x()'/></svg>", "event handler", id="event handler"),
        pytest.param("<svg><rect/></svg>", "root element must be", id="no namespace"),
        pytest.param(f"<svg {SVG}><rect></svg>", "not well-formed XML at line 1", id="malformed"),
    ],
)
def test_svg_limits_are_clear_errors(svg: str, message: str) -> None:
    with pytest.raises(SvgLogoError, match=message):
        sanitize_svg(svg.encode())


def test_a_real_world_logo_survives_cleaned(tmp_path: Path, inspection: InspectionReport) -> None:
    """Inkscape's metadata and namespaces go; shapes, text, gradients, local <use>, embedded PNGs stay."""
    png = base64.b64encode(_png()).decode()
    logo = f"""<?xml version="1.0" encoding="UTF-8"?>
<svg {SVG} xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" width="180" height="44"
     inkscape:version="1.2">
  <sodipodi:namedview id="nv" pagecolor="#ffffff"/>
  <metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>
  <defs><linearGradient id="g"><stop offset="0" stop-color="#1f4e79"/></linearGradient>
    <circle id="dot" r="4"/></defs>
  <style>.t {{ fill: url(#g); }}</style>
  <rect width="180" height="44" fill="url(#g)" inkscape:label="bg"/>
  <use xlink:href="#dot" x="10" y="10"/>
  <image href="data:image/png;base64,{png}" width="4" height="4"/>
  <text class="t" x="20" y="30">ACME</text>
</svg>""".encode()
    cleaned = clean_logo(logo)
    assert b"sodipodi" not in cleaned and b"inkscape" not in cleaned and b"rdf" not in cleaned
    assert b'href="#dot"' in cleaned and b"ACME" in cleaned and b"data:image/png" in cleaned
    assert clean_logo(cleaned) == cleaned  # stable: cleaning what is stored changes nothing
    report = replace(inspection, customer=replace(inspection.customer, logo=logo))
    assert render_inspection(report, "pdf", "en").startswith(b"%PDF-")
    assert load_logo(logo) == "data:image/svg+xml;base64," + base64.b64encode(cleaned).decode()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    store.enroll_agent("acme", host="web1")
    yield TestClient(create_app(store, None)), store
    store.close()


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_upload_refuses_a_hostile_logo(
    variant: str, api: tuple[TestClient, Store], server: tuple[str, list[str]], secret_svg: Path
) -> None:
    client, store = api
    url, seen = server
    token = store.create_api_token("acme-admin", "customer_admin", customer="acme")
    logo = dict(_variants(url, secret_svg.as_uri()))[variant]
    response = client.put(
        "/api/v1/customers/acme/profile",
        headers={"Authorization": f"Bearer {token}"},
        json={"logo_base64": base64.b64encode(logo).decode()},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("logo: logo bytes: ")
    profile = client.get("/api/v1/customers/acme/profile", headers={"Authorization": f"Bearer {token}"})
    assert profile.json()["has_logo"] is False
    assert seen == []


def test_upload_stores_the_cleaned_logo(api: tuple[TestClient, Store]) -> None:
    client, store = api
    token = store.create_api_token("acme-admin", "customer_admin", customer="acme")
    logo = f'<svg {SVG} xmlns:x="urn:x" x:junk="1"><use xlink:href="#r"/><rect id="r" width="2"/></svg>'
    response = client.put(
        "/api/v1/customers/acme/profile",
        headers={"Authorization": f"Bearer {token}"},
        json={"logo_base64": base64.b64encode(logo.encode()).decode()},
    )
    assert response.status_code == 200, response.text
    assert response.json()["logo_bytes"] == len(clean_logo(logo.encode()))
    assert len(clean_logo(logo.encode())) < len(logo)  # the foreign attribute is gone
    _ = Customer  # re-exported model, used by the fixtures' reports
