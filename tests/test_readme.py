"""The README's example commands stay valid: every ``diagctl`` line parses with today's CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from diagctl.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def diagctl_examples() -> list[str]:
    found = []
    for line in README.read_text(encoding="utf-8").splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            part = part.strip()
            if part.startswith("diagctl "):
                found.append(part)
    return found


def test_the_readme_shows_diagctl_examples() -> None:
    assert len(diagctl_examples()) >= 10


@pytest.mark.parametrize("command", diagctl_examples())
def test_every_readme_diagctl_example_parses(command: str) -> None:
    build_parser().parse_args(shlex.split(command)[1:])
