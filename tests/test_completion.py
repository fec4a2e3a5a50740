"""Shell completion: each command prints a bash script that really completes its subcommands.

The script is sourced in a real bash and its completion function is called as bash would
on <TAB>; zsh and tcsh scripts are checked to be produced from the same parser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(module: str, shell: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, "--print-completion", shell],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _complete(script: str, program: str, words: list[str], tmp_path: Path) -> list[str]:
    path = tmp_path / f"{program}.bash"
    path.write_text(script)
    words_text = " ".join(f"'{w}'" for w in [program, *words])
    previous = words[-2] if len(words) > 1 else program
    function = f"_shtab_{program.replace('-', '_')}"
    probe = (
        f"source {path}; COMP_WORDS=({words_text}); COMP_CWORD={len(words)}; "
        f'COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}; '
        f"{function} {program} '{words[-1]}' '{previous}'; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(
    ("module", "program", "words", "expected"),
    [
        pytest.param("agent.cli", "diag-agent", ["ch"], {"checks", "check-config"}, id="diag-agent"),
        pytest.param(
            "collector.cli",
            "diag-collector",
            ["token", ""],
            {"create", "list", "revoke"},
            id="diag-collector",
        ),
        pytest.param(
            "diagctl.main",
            "diagctl",
            ["reports", ""],
            {"list", "get", "render", "inspection", "fault"},
            id="diagctl",
        ),
        pytest.param("agent.cli", "diag-agent", ["run", "--log-l"], {"--log-level"}, id="an option"),
    ],
)
def test_bash_completes_subcommands_and_options(module, program, words, expected, tmp_path) -> None:
    assert set(_complete(_script(module, "bash"), program, words, tmp_path)) == expected


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_other_shells_get_a_script_naming_every_command(shell) -> None:
    script = _script("diagctl.main", shell)
    for command in ("hosts", "results", "agents", "reports", "inspections", "cases"):
        assert command in script
