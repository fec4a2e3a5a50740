"""Diagnostic mode: the read-only commands an engineer may run, and nothing else.

A command is split like a shell would (:func:`shlex.split`, no expansion, no pipes,
no redirection: nothing reaches a shell) and must match one form below exactly; its
arguments are checked by pattern. The program is run by absolute path (``PATH`` plays
no part). Every refusal says why and what is allowed.

>>> resolve("df -h").argv[1:]
('-h',)
>>> resolve("journalctl -n 50 -u nginx.service").argv[1:]
('-n', '50', '-u', 'nginx.service', '--no-pager')
>>> try:
...     resolve("rm -rf /")
... except Refused as err:
...     print(str(err)[:55])
command 'rm' is not allowed in diagnostic mode; allowed
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from typing import Final

__all__ = ["ALLOWED", "Command", "Refused", "resolve"]

_CHECK_NAME: Final = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")
_UNIT: Final = re.compile(r"^[A-Za-z0-9@:._-]{1,200}$")
_COUNT: Final = re.compile(r"^[1-9][0-9]{0,3}$")

ALLOWED: Final[tuple[str, ...]] = (
    "uptime",
    "free -m",
    "df -h",
    "ps aux",
    "ss -tanp",
    "ss -uanp",
    "ip addr",
    "ip route",
    "journalctl -n N -u UNIT",
    "diag-agent check NAME",
)
"""The forms, as the refusal message lists them (N: 1-9999; UNIT: a systemd unit; NAME: a check)."""

_FIXED: Final[dict[tuple[str, ...], tuple[str, ...]]] = {
    ("uptime",): ("uptime",),
    ("free", "-m"): ("free", "-m"),
    ("df", "-h"): ("df", "-h"),
    ("ps", "aux"): ("ps", "aux"),
    ("ss", "-tanp"): ("ss", "-tanp"),
    ("ss", "-uanp"): ("ss", "-uanp"),
    ("ip", "addr"): ("ip", "addr"),
    ("ip", "route"): ("ip", "route"),
}


class Refused(Exception):
    """The command is not allowed; the message says why."""


@dataclass(frozen=True, slots=True)
class Command:
    argv: tuple[str, ...]
    """Absolute program path first."""
    display: str


def _allowed() -> str:
    return ", ".join(ALLOWED)


def _program(name: str) -> str:
    path = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise Refused(f"{name} is not installed on this host")
    return path


def resolve(command: str) -> Command:
    """The argv to run for ``command``; raises :class:`Refused` with the reason."""
    if len(command) > 1000:
        raise Refused("command is longer than 1000 characters")
    try:
        words = tuple(shlex.split(command))
    except ValueError as exc:
        raise Refused(f"cannot parse the command ({exc})") from None
    if not words:
        raise Refused(f"empty command; allowed in diagnostic mode: {_allowed()}")
    fixed = _FIXED.get(words)
    if fixed is not None:
        return Command((_program(fixed[0]), *fixed[1:]), command)
    if words[0] == "journalctl":
        if len(words) == 5 and words[1] == "-n" and words[3] == "-u":
            if not _COUNT.match(words[2]):
                raise Refused("journalctl -n takes a number of lines from 1 to 9999")
            if not _UNIT.match(words[4]):
                raise Refused("journalctl -u takes a systemd unit name")
            return Command((_program("journalctl"), "-n", words[2], "-u", words[4], "--no-pager"), command)
        raise Refused("journalctl is allowed only as: journalctl -n N -u UNIT")
    if words[0] == "diag-agent":
        if len(words) == 3 and words[1] == "check" and _CHECK_NAME.match(words[2]):
            argv = (sys.executable, "-m", "agent", "checks", "--check", words[2], "--sample-interval", "0")
            return Command(argv, command)
        raise Refused("diag-agent is allowed only as: diag-agent check NAME (e.g. host.load)")
    if words[0] in {w[0] for w in _FIXED}:
        forms = ", ".join(" ".join(w) for w in _FIXED if w[0] == words[0])
        raise Refused(f"{words[0]} is allowed only as: {forms}")
    raise Refused(f"command {words[0][:60]!r} is not allowed in diagnostic mode; allowed: {_allowed()}")
