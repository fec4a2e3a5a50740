"""Chinese PDFs on a machine without CJK fonts: refused with what to install, never stored.

"A machine without CJK fonts" is real: a subprocess whose fontconfig (``FONTCONFIG_FILE``)
knows only the DejaVu fonts, so Pango genuinely finds no font for Chinese text. The same
renders then run in this process, where fontconfig sees the system's Noto Sans CJK, and
the PDF has real glyphs (``pdffonts``, ``pdftotext``). Storage is real (SQLite and
PostgreSQL); the API is the real FastAPI app.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.inspections.runner import Runner, RunnerSettings, render_run_report
from collector.reports.glyphs import MissingGlyphsError
from collector.store import Scope, Store
from collector.store.inspections import InspectionRepo
from collector.store.reports import ReportRepo
from tests.collector.inspections.test_delivery import finished_run, plan
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening

ROOT = Path(__file__).resolve().parents[3]


def _latin_font() -> Path | None:
    """One installed font file without CJK glyphs (DejaVu comes with fontconfig on Debian)."""
    if shutil.which("fc-list") is None:
        return None
    listed = subprocess.run(
        ["fc-list", ":lang=en", "file"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    files = sorted(line.split(":")[0] for line in listed.splitlines() if line.strip())
    for file in files:
        if "DejaVuSans.ttf" in file:
            return Path(file)
    candidates = [f for f in files if "cjk" not in f.lower() and f.endswith((".ttf", ".otf"))]
    return Path(candidates[0]) if candidates else None


@pytest.fixture(scope="module")
def no_cjk_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a subprocess whose fontconfig has one Latin font and no CJK font."""
    font = _latin_font()
    if font is None:
        pytest.skip("no Latin font found with fc-list (install fontconfig and fonts-dejavu-core)")
    home = tmp_path_factory.mktemp("no-cjk")
    (home / "fonts").mkdir()
    shutil.copy(font, home / "fonts" / font.name)
    conf = home / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        f"  <dir>{home / 'fonts'}</dir>\n  <cachedir>{home / 'cache'}</cachedir>\n</fontconfig>\n"
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(conf), "PYTHONPATH": str(ROOT)}
    check = subprocess.run(
        ["fc-list", ":lang=zh"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert check.stdout.strip() == "", "the private fontconfig still sees a CJK font"
    return env


def _run(script: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_chinese_pdf_without_cjk_fonts_is_refused_naming_the_font_package(no_cjk_env, tmp_path):
    result = _run(
        f"""
        import json
        from pathlib import Path
        from collector.reports import ReportError, render_fault_analysis, render_inspection
        from collector.reports.sample import sample_fault_analysis, sample_inspection
        out = {{}}
        for kind, render, report in (
            ("inspection", render_inspection, sample_inspection()),
            ("fault", render_fault_analysis, sample_fault_analysis()),
        ):
            try:
                render(report, "pdf", "zh-CN")
                out[kind] = "rendered"
            except ReportError as exc:
                out[kind] = str(exc)
        Path({str(tmp_path / "en.pdf")!r}).write_bytes(render_inspection(sample_inspection(), "pdf", "en"))
        print(json.dumps(out))
        """,
        no_cjk_env,
    )
    for kind in ("inspection", "fault"):
        message = str(result[kind])
        assert message != "rendered", f"the {kind} report rendered Chinese without a CJK font"
        assert "empty boxes" in message and "fonts-noto-cjk" in message and "not stored" in message
        assert "U+" in message
    # Every Chinese character counts (the report has hundreds), sorted, a sample of 8 named.
    counted = re.match(r"the PDF would show (\d+) character", str(result["inspection"]))
    assert counted is not None and int(counted.group(1)) > 100
    assert "'。' (U+3002), '一' (U+4E00)" in str(result["inspection"])
    # The same environment renders English fine: the refusal is about glyphs, not a broken setup.
    fonts = subprocess.run(
        ["pdffonts", str(tmp_path / "en.pdf")], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "DejaVu" in fonts and "CJK" not in fonts


def test_the_error_lists_a_sample_and_counts_the_rest() -> None:
    error = MissingGlyphsError(range(0x4E00, 0x4E0C))
    text = str(error)
    assert text.startswith("the PDF would show 12 character(s) as empty boxes")
    assert "'一' (U+4E00)" in text and "U+4E07" in text and "U+4E08" not in text
    assert "and 4 more" in text
    assert "has them: ? (U+0007);" in str(MissingGlyphsError([0x7]))  # a control character is not printed


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'c.db'}"
        return
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        yield url


def test_the_refused_pdf_is_not_stored_and_renders_with_real_glyphs_once_fonts_exist(
    no_cjk_env, store_url, tmp_path
):
    reports_dir = tmp_path / "reports"
    store = Store.open(store_url)
    try:
        store.enroll_agent("acme", host="db1")
        runner = Runner(store, None, RunnerSettings(reports_dir=reports_dir))
        run_id = finished_run(runner, plan([], language="en"))
        repo = InspectionRepo(store)
        reports = ReportRepo(store)
        before = {r.id for r in reports.reports(Scope.everything())}

        # A collector on a machine without CJK fonts is asked for the Chinese PDF.
        result = _run(
            f"""
            import json
            from pathlib import Path
            from collector.inspections.runner import Runner, RunnerSettings, render_run_report
            from collector.reports import ReportError
            from collector.store import Scope, Store
            store = Store.open({store_url!r})
            runner = Runner(store, None, RunnerSettings(reports_dir=Path({str(reports_dir)!r})))
            run = runner.repo.run(Scope.everything(), {run_id!r})
            try:
                render_run_report(runner, run, "zh-CN", "pdf")
                print(json.dumps({{"error": None}}))
            except ReportError as exc:
                print(json.dumps({{"error": str(exc)}}))
            store.close()
            """,
            no_cjk_env,
        )
        assert result["error"] is not None and "fonts-noto-cjk" in str(result["error"])
        assert {r.id for r in reports.reports(Scope.everything())} == before  # nothing stored
        assert not list(reports_dir.rglob("*.pdf"))  # and no file written

        # The fonts are there (this process): the same request renders and stores real glyphs.
        run = repo.run(Scope.everything(), run_id)
        record = render_run_report(runner, run, "zh-CN", "pdf")
        _, content = reports.report_content(Scope.of("acme"), record.id)
        path = tmp_path / "zh.pdf"
        path.write_bytes(content)
        fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, timeout=60).stdout
        assert "Noto-Sans-CJK-SC" in fonts
        text = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, timeout=60
        ).stdout.decode()
        assert "巡检报告" in text
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    opened.enroll_agent("acme", host="db1")
    opened.enroll_agent("globex", host="app1")
    yield opened
    opened.close()


def test_a_stored_report_renders_again_as_a_new_record_for_each_role(store: Store) -> None:
    runner = Runner(store, None)
    run_id = finished_run(runner, plan([], language="zh-CN"))
    repo = ReportRepo(store)
    # A record as an older collector stored it without fonts: served byte for byte until rendered again.
    broken = repo.add_report("acme", "inspection", run_id, "zh-CN", "pdf", b"%PDF-1.7 boxes only")
    client = TestClient(create_app(store))

    def post(token: str, report_id: int) -> tuple[int, dict[str, object]]:
        response = client.post(
            f"/api/v1/reports/{report_id}/render", headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code, response.json()

    viewer = store.create_api_token("v", "viewer", customer="acme")
    other = store.create_api_token("g", "customer_admin", customer="globex")
    admin = store.create_api_token("a", "customer_admin", customer="acme")
    engineer = store.create_api_token("e", "engineer")
    assert post(viewer, broken.id)[0] == 403
    status, body = post(other, broken.id)
    assert status == 404 and "boxes" not in json.dumps(body)  # another customer's: as if absent
    assert post(engineer, 999_999)[0] == 404

    status, body = post(admin, broken.id)
    assert status == 201, body
    assert (body["kind"], body["subject"], body["lang"], body["format"]) == (
        "inspection",
        run_id,
        "zh-CN",
        "pdf",
    )
    assert body["id"] != broken.id
    _, content = repo.report_content(Scope.of("acme"), int(str(body["id"])))
    assert content.startswith(b"%PDF") and content != b"%PDF-1.7 boxes only"
    # The old record is kept as it was; the new one is what the report URL serves from now on.
    assert repo.report_content(Scope.of("acme"), broken.id)[1] == b"%PDF-1.7 boxes only"
    served = client.get(
        "/api/v1/reports/inspection",
        params={"run": run_id, "lang": "zh-CN", "format": "pdf"},
        headers={"Authorization": f"Bearer {engineer}"},
    )
    assert served.headers["x-report-id"] == str(body["id"]) and served.content == content
    status, again = post(engineer, broken.id)
    assert status == 201 and again["id"] not in (broken.id, body["id"])
