"""The service desk and remote-session pages in real headless Chromium (Debian's
/usr/bin/chromium, via Playwright) against a real ``diag-collector serve`` on a seeded
SQLite store (the fixture of :mod:`tests.integration.test_dashboard_browser`).

An engineer opens a case from the form, takes it, transfers it, logs time (by keyboard
alone) and resolves it; the engineer requests a remote session through the real API and
the customer's admin approves it in the browser. Screenshots go to ``$DIAG_ARTIFACTS/desk``.
No agent is connected, so the approved grant is stored and audited but not sent (the
agent's side is covered by tests/integration/test_sessions*.py).
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path

import pytest

from tests.integration.test_dashboard_browser import CHROMIUM, LAUNCH_ARGS, _sign_in, collector

__all__ = ["collector"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Beside the dashboard test's screenshots, in their own folder (that test counts its own)."""
    where = Path(os.environ.get("DIAG_ARTIFACTS") or tmp_path / "artifacts") / "desk"
    where.mkdir(parents=True, exist_ok=True)
    return where


def _public_key() -> str:
    """A well-formed ed25519 public key line (the collector parses it; nobody connects)."""
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + os.urandom(32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} eng@laptop"


def test_desk_and_session_approval_in_chromium(collector, artifacts: Path) -> None:
    import httpx
    from playwright.sync_api import expect, sync_playwright

    base, tokens = collector
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US").new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            _sign_in(page, base, tokens["engineer"])

            # Open a case from the form.
            page.goto(f"{base}/cases")
            page.click('a[href="/cases/new"]')
            page.fill("input[name=customer]", "acme")
            page.select_option("select[name=type]", "consultation")
            page.select_option("select[name=channel]", "hotline")
            page.fill("input[name=title]", "How do I rotate the logs?")
            page.fill("textarea[name=description]", "asked on the hotline")
            page.fill("input[name=contact]", "Ms Li")
            page.screenshot(path=artifacts / "desk-open.png", full_page=True)
            page.click("form[action='/cases/new'] button[type=submit]")
            expect(page.locator("h1")).to_contain_text("C-acme-2")
            case_url = page.url
            expect(page.locator(".case-channel")).to_have_text("hotline")

            # Take it, transfer it.
            page.click("form.desk-steps button[value=take]")
            expect(page.locator(".state-acknowledged").first).to_be_visible()
            expect(page.locator(".first-responder")).to_have_text("eng")
            page.fill("form.transfer input[name=to]", "wang")
            page.fill("form.transfer input[name=reason]", "knows the log setup")
            page.click("form.transfer button")
            expect(page.locator(".assignee")).to_have_text("wang")
            expect(page.locator(".first-responder")).to_have_text("eng")

            # Log time with the keyboard only: focus, type, Tab between fields, Enter submits.
            page.focus("form.log-time input[name=minutes]")
            page.keyboard.type("40")
            page.keyboard.press("Tab")
            page.keyboard.type("explained logrotate")
            page.keyboard.press("Enter")
            expect(page.locator(".time-log .total")).to_have_text("40")

            # Resolve it.
            page.fill("form.desk-steps input[name=note]", "answered")
            page.click("form.desk-steps button[value=resolve]")
            expect(page.locator(".state-resolved").first).to_be_visible()
            expect(page.locator("form.desk-steps button[value=follow-up]")).to_be_visible()
            page.screenshot(path=artifacts / "desk-case.png", full_page=True)
            page.goto(f"{base}/cases?state=all&channel=hotline")
            expect(page.locator("tbody tr[data-case]")).to_have_count(1)
            page.screenshot(path=artifacts / "desk-cases.png", full_page=True)
            assert not errors, errors

            # The engineer requests a session through the API; the customer admin approves it.
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {tokens['engineer']}"}
            ) as api:
                made = api.post(
                    "/api/v1/sessions",
                    json={"host": "db1", "case": tokens["case"], "reason": "inspect /data", "mode": "shell",
                          "public_key": _public_key(), "duration_s": 3600},
                )  # fmt: skip
                assert made.status_code == 201, made.text
                session_id = made.json()["id"]
            admin = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            _sign_in(admin, base, tokens["admin"])
            admin.goto(f"{base}/cases/{tokens['case']}")
            admin.click(f'a[href="/remote-sessions?case={tokens["case"]}"]')
            admin.click(f'a[href="/remote-sessions/{session_id}"]')
            expect(admin.locator("h1")).to_contain_text(session_id)
            expect(admin.locator("dl.facts")).to_contain_text("inspect /data")
            admin.screenshot(path=artifacts / "session-requested.png", full_page=True)
            admin.click(f"form[action$='/{session_id}/approve'] button")
            expect(admin.locator(".state-approved").first).to_be_visible()
            expect(admin.locator("table.audit")).to_contain_text("approved")
            admin.screenshot(path=artifacts / "session-approved.png", full_page=True)

            # Another customer's admin: the same 404 as a missing session.
            other = browser.new_context().new_page()
            _sign_in(other, base, tokens["globex"])
            response = other.goto(f"{base}/remote-sessions/{session_id}")
            assert response is not None and response.status == 404
            response = other.goto(case_url)
            assert response is not None and response.status == 404
        finally:
            browser.close()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['engineer']}"}) as api:
        assert api.get(f"/api/v1/sessions/{session_id}").json()["approved_by"] == "acme-admin"
    for name in ("desk-open", "desk-case", "desk-cases", "session-requested", "session-approved"):
        assert (artifacts / f"{name}.png").stat().st_size > 1000
