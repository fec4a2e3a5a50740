"""Console-script entry points of the vendor side, safe to start on an agent-only install.

``pip install remote-diag`` installs only the agent's dependencies, but every console
script of the distribution. Without this, ``diag-collector`` on such a host would die in
an import with a traceback; instead it says which extra to install. Importing this
module imports nothing heavy.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["collector_main", "diagctl_main", "missing_modules"]

#: Modules that stand for an extra: if one is absent, the extra is not installed.
COLLECTOR_MODULES = ("sqlalchemy", "alembic", "grpc", "fastapi", "uvicorn", "jinja2", "httpx")
DIAGCTL_MODULES = ("httpx", "yaml")


def missing_modules(modules: Sequence[str]) -> list[str]:
    """Those of ``modules`` that cannot be imported here."""
    return [name for name in modules if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a broken half-install
        return False


def _refuse(program: str, extra: str, missing: list[str]) -> int:
    print(
        f"{program}: this installation lacks {', '.join(missing)}: it has only the agent (diag-agent). "
        f"Install {program} with: pip install 'remote-diag[{extra}]'",
        file=sys.stderr,
    )
    return 2


def collector_main(argv: Sequence[str] | None = None) -> int:
    """``diag-collector``."""
    missing = missing_modules(COLLECTOR_MODULES)
    if missing:
        return _refuse("diag-collector", "collector", missing)
    from collector.cli.main import main

    return main(argv)


def diagctl_main(argv: Sequence[str] | None = None) -> int:
    """``diagctl``."""
    missing = missing_modules(DIAGCTL_MODULES)
    if missing:
        return _refuse("diagctl", "diagctl", missing)
    from diagctl.main import main

    return main(argv)
