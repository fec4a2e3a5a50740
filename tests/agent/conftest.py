"""Fixtures of the agent's tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent import fakes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def release_hung_checks() -> Iterator[None]:
    """Hanging fake checks block until the test ends, then every abandoned thread returns."""
    fakes.RELEASE.clear()
    yield
    fakes.RELEASE.set()


def agent_env() -> dict[str, str]:
    """Environment for ``python -m agent.cli`` subprocesses (the package is not installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop("NO_COLOR", None)
    return env


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", *args]
