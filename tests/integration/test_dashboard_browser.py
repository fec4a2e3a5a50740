"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a real ``diag-collector serve`` process on a seeded SQLite store.

Sign in, fleet, a customer's hosts, a host (chart with its band), a case (acknowledge,
resolve), an inspection run started from the browser with its live progress, its zh-CN
report, sign out; a customer_admin cannot open another customer's host by URL. Screenshots
of each page go to ``$DIAG_ARTIFACTS`` (else the test's tmp dir); a few pixels are checked:
the CRIT cell is red, the host chart has its band. No inspection agent is connected, so the
run's hosts are reported offline once the plan's 2 s answer deadline passes (the run and
its report are real; agents answering are covered by tests/integration/test_inspections.py).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store import IngestBatch, Store
from tests.collector.store.test_store import result
from tests.collector.web.seed import seed
from tests.integration.harness import Proc, free_port, spawn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PLAN = """\
name: nightly
customer: acme
timezone: Asia/Shanghai
schedule: "0 3 * * *"
layers: [host, storage]
language: zh-CN
answer_deadline: 2s
"""
ODD_HOST = "x/y?z#w 网 %2F"
"""A host name that breaks unquoted links (and one that already looks quoted)."""


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install -y chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("DIAG_ARTIFACTS") or tmp_path / "artifacts") / "dashboard"
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url)
    tokens = seed(store)
    odd, _ = store.enroll_agent("acme", host=ODD_HOST, agent_id="acme-odd")
    store.ingest(odd, IngestBatch(1, 1, [result(1, "host.load", "WARN")], [], [], []))
    store.close()
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "nightly.yaml").write_text(PLAN)
    config = tmp_path / "collector.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\ninspections: {{plans_dir: {plans}, poll_s: 0.2}}\n")
    port = free_port()
    proc: Proc = spawn(
        ["-m", "collector.cli", "serve", "--config", str(config), "--store", url,
         "--grpc-listen", f"127.0.0.1:{free_port()}", "--http-listen", f"127.0.0.1:{port}"],
        tmp_path / "serve.log",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops" not in proc.output():
            assert proc.popen.poll() is None and time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
        assert f"dashboard on http://127.0.0.1:{port}/" in proc.output()
        assert f"docs at http://127.0.0.1:{port}/api/v1/docs" in proc.output()
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        proc.kill9()


def _pixel_colours(png: bytes) -> list[tuple[int, int, int]]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return list(image.convert("RGB").getdata())


def _sign_in(page, base: str, token: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")


def test_dashboard_in_chromium(collector, artifacts: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, tokens = collector
    case_id = tokens["case"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            # A notification's case link: sign in first, land on the case.
            page.goto(f"{base}/cases/{case_id}")
            assert "/sign-in" in page.url
            page.screenshot(path=artifacts / "sign-in.png", full_page=True)
            page.fill("#token", tokens["engineer"])
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_contain_text(case_id)

            page.goto(f"{base}/fleet")
            rows = page.locator("table.fleet tbody tr[data-customer]")
            expect(rows).to_have_count(2)
            expect(rows.first).to_have_attribute("data-customer", "acme")
            expect(page.locator("tr[data-total] th")).to_contain_text("Whole fleet (2 customers)")
            expect(page.locator("tr[data-total] td.num").first).to_have_text("4")  # hosts, whole fleet
            page.screenshot(path=artifacts / "fleet.png", full_page=True)
            crit = page.locator('tr[data-customer="acme"] td[data-layer="storage"] .sev-crit')
            red = [c for c in _pixel_colours(crit.screenshot()) if c[0] > 150 and c[1] < 90 and c[2] < 90]
            assert len(red) > 20, "the CRIT badge is not red"

            page.keyboard.press("Tab")  # keyboard: the skip link comes first and is visible on focus
            expect(page.locator("a.skip")).to_be_focused()

            # The filter form: worst state OK leaves globex alone (the totals stay whole).
            page.select_option("select[name=state]", "OK")
            page.click("form.filters button")
            expect(rows).to_have_count(1)
            expect(rows.first).to_have_attribute("data-customer", "globex")
            expect(page.locator("tr[data-total] td.num").first).to_have_text("4")

            # A host whose name holds "/", "?", "#", a space, non-ASCII and "%2F" opens.
            page.goto(f"{base}/fleet/acme")
            page.click(f'a:text-is("{ODD_HOST}")')
            expect(page.locator("h1")).to_contain_text(ODD_HOST)

            page.goto(f"{base}/fleet")
            page.click('a[href="/fleet/acme"]')
            page.click('a[href="/hosts/acme/db1"]')
            expect(page.locator("h1")).to_contain_text("db1")
            page.screenshot(path=artifacts / "host.png", full_page=True)
            chart = page.locator("figure.chart-box svg").first
            band = [c for c in _pixel_colours(chart.screenshot()) if c == (0xCF, 0xE3, 0xF5)]
            assert len(band) > 200, "the chart has no baseline band"
            expect(page.locator("figure.chart-box svg desc").first).to_have_count(1)

            # Acknowledge and resolve the case with its forms.
            page.goto(f"{base}/cases/{case_id}")
            page.fill("input[name=owner]", "wang")
            page.click("form[action$='/ack'] button")
            expect(page.locator(".state-acknowledged").first).to_be_visible()
            page.fill("form.desk-steps input[name=note]", "disk cleaned")
            page.click("form.desk-steps button[value=resolve]")
            expect(page.locator(".state-resolved").first).to_be_visible()
            page.screenshot(path=artifacts / "case.png", full_page=True)

            page.goto(f"{base}/cases")
            page.screenshot(path=artifacts / "cases.png", full_page=True)

            # Run an inspection now and watch it finish without reloading by hand.
            page.goto(f"{base}/inspections")
            page.screenshot(path=artifacts / "inspections.png", full_page=True)
            page.click('a[href="/inspections/plans/acme/nightly"]')
            page.click("form[action$='/run'] button")
            expect(page.locator("section.progress")).to_be_visible()
            page.screenshot(path=artifacts / "run-progress.png", full_page=True)
            expect(page.locator(".state-done")).to_be_visible(timeout=60_000)  # live.js reloads when done
            page.screenshot(path=artifacts / "run-done.png", full_page=True)

            # Its zh-CN report, from the run page.
            page.click('li[lang="zh-CN"] a:text-is("open")')
            expect(page.locator("body")).to_contain_text("巡检报告")
            page.screenshot(path=artifacts / "report-zh-CN.png", full_page=True)

            # The dashboard in Chinese, remembered.
            page.goto(f"{base}/reports")
            page.click('a.lang[lang="zh-CN"]')
            expect(page.locator("h1")).to_have_text("服务记录")
            page.goto(f"{base}/fleet")
            expect(page.locator("h1")).to_contain_text("总览")
            page.screenshot(path=artifacts / "fleet-zh-CN.png", full_page=True)

            # A phone-sized window still shows the navigation.
            page.set_viewport_size({"width": 390, "height": 844})
            expect(page.locator("header nav")).to_be_visible()
            page.screenshot(path=artifacts / "fleet-phone.png", full_page=True)

            page.click("form[action='/sign-out'] button")
            assert "/sign-in" in page.url
            page.goto(f"{base}/fleet")
            assert "/sign-in" in page.url
            assert not errors, errors  # no CSP violations or script errors

            # A customer admin: another customer's host by URL is a 404, like a missing one.
            admin = browser.new_context().new_page()
            _sign_in(admin, base, tokens["admin"])
            response = admin.goto(f"{base}/hosts/globex/app1")
            assert response is not None and response.status == 404
            expect(admin.locator("[role=alert]")).to_contain_text("app1")
            admin.screenshot(path=artifacts / "other-customer-404.png", full_page=True)
            own = admin.goto(f"{base}/hosts/acme/db1")
            assert own is not None and own.status == 200
        finally:
            browser.close()
    assert sorted(p.name for p in artifacts.glob("*.png")) == sorted(
        [
            "sign-in.png", "fleet.png", "host.png", "case.png", "cases.png", "inspections.png",
            "run-progress.png", "run-done.png", "report-zh-CN.png", "fleet-zh-CN.png",
            "fleet-phone.png", "other-customer-404.png",
        ]
    )  # fmt: skip
    assert shutil.disk_usage(artifacts).free > 0


def test_csrf_less_posts_to_a_real_serve_are_refused(collector) -> None:
    import httpx

    base, tokens = collector
    with httpx.Client(base_url=base, follow_redirects=False) as client:
        form = client.get("/sign-in")
        import re

        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        signed = client.post("/sign-in", data={"csrf": token.group(1), "token": tokens["admin"]})
        assert signed.status_code == 303
        refused = client.post(f"/cases/{tokens['case']}/ack", data={"owner": "x"})
        assert refused.status_code == 403
        case = client.get(f"/cases/{tokens['case']}")
        assert "state-new" in case.text
