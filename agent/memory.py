"""Keeping the daemon's resident memory down (``diag-agent run`` stays at or below 45 MB).

Measured with ``bench/agent_rss.py`` (see docs/agent.md, "Memory"):

- :func:`before_load`: pydantic looks for plugins through ``importlib.metadata`` the first
  time it builds a validator, reading every installed distribution's metadata (about
  0.4 MB of RSS for nothing: the agent uses no pydantic plugin). Disabled with pydantic's
  own ``PYDANTIC_DISABLE_PLUGINS`` unless the environment already sets it.
- :func:`after_start`: once the config is loaded and every check imported, drop
  ``linecache``'s copy of the checks' sources (pydantic read them for the params'
  field docstrings), move the surviving objects to the garbage collector's permanent
  generation (:func:`gc.freeze`: later collections skip them), and hand freed heap
  pages back to the kernel with glibc's ``malloc_trim(0)``.
"""

from __future__ import annotations

import gc
import linecache
import logging
import os

__all__ = ["after_start", "before_load", "malloc_trim"]

log = logging.getLogger("diag_agent.memory")


def before_load() -> None:
    """Call before the first pydantic model is validated (before the config is loaded)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def malloc_trim() -> bool:
    """Return free heap memory to the kernel (glibc); False where there is no ``malloc_trim``."""
    import ctypes  # loaded anyway by host.clock; a C library without it (musl) just skips

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def after_start() -> None:
    """Call once start-up garbage is gone: config parsed, checks imported, threads started."""
    linecache.clearcache()
    gc.collect()
    gc.freeze()
    released = malloc_trim()
    log.debug("start-up memory released (malloc_trim: %s)", released)
