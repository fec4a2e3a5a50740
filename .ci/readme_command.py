"""Print one of the two commands the README opens with, so CI runs exactly those.

Usage: ``python .ci/readme_command.py run|test``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def readme_commands(text: str) -> list[str]:
    """The first two lines of the README's first ``sh`` code block."""
    match = re.search(r"```sh\n(.*?)```", text, re.S)
    if not match:
        raise SystemExit("README.md has no ```sh block with the two commands")
    lines = [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 2:
        raise SystemExit(f"README.md's first sh block must hold exactly two commands, found {len(lines)}")
    return lines


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in ("run", "test"):
        print("usage: readme_command.py run|test", file=sys.stderr)
        return 2
    commands = readme_commands((Path(__file__).resolve().parent.parent / "README.md").read_text())
    print(commands[0 if which == "run" else 1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
