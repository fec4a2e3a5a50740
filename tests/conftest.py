"""Shared fixtures: probes rooted in fixture trees, fake clocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.probe import Probe

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_probe(host: str, now: float = 1_700_000_000.0) -> Probe:
    """A probe whose ``/`` is ``tests/fixtures/hosts/<host>`` and whose clock is fixed."""
    return Probe(root=FIXTURES / "hosts" / host, clock=lambda: now, monotonic=lambda: now)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (DIAG_FAIL_ON_SKIP=1) a skipped test fails the run: CI installs everything."""
    import os

    if os.environ.get("DIAG_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and session.exitstatus == 0:
        if reporter is not None:
            reporter.write_line(f"FAILED: {skipped} test(s) skipped; CI must run everything", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
