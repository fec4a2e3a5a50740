"""Checks' persistent value stores (counters for rates, file offsets), kept as one JSON file.

Each check gets a *fresh copy* of its store for every run (decoded from the JSON text
kept in memory) and the copy is committed only when the run completes normally. So a
check that raises or hangs never leaves half-written state, an abandoned thread can
keep mutating its copy without racing the saver, and a value that is not
JSON-serialisable is caught at commit instead of at save time.

The file is written atomically (temporary file, fsync, rename) on a cadence and on
shutdown, never per run.

>>> store = StateStore(None)
>>> s = store.checkout("host.load"); s["n"] = 1; store.commit("host.load", s)
True
>>> store.checkout("host.load")
{'n': 1}
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "StateStore"]

STATE_FILE = "state.json"
_FORMAT_VERSION = 1

log = logging.getLogger("diag_agent.state")


class StateStore:
    """All checks' stores. ``directory`` None keeps them in memory only."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / STATE_FILE if directory is not None else None
        self._encoded: dict[str, str] = {}
        self._live: dict[str, MutableMapping[str, Any]] = {}
        self._encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
        self.dirty = False
        if self.path is not None:
            self._load(self.path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # A corrupt or unreadable state file costs one run of rates, not the agent:
            # keep it aside for inspection and start empty.
            aside = path.with_name(path.name + ".corrupt")
            log.warning("state file %s unusable (%s); moved to %s, starting empty", path, exc, aside)
            try:
                os.replace(path, aside)
            except OSError as move_exc:
                log.warning("could not move %s aside: %s", path, move_exc)
            return
        checks = data.get("checks") if isinstance(data, dict) else None
        if not isinstance(checks, dict):
            log.warning("state file %s has no 'checks' mapping; starting empty", path)
            return
        for name, store in checks.items():
            if isinstance(store, dict):
                self._encoded[str(name)] = json.dumps(store, separators=(",", ":"))

    def checkout(self, check: str) -> MutableMapping[str, Any]:
        """A private, mutable copy of ``check``'s store for one run.

        The object committed last time is handed out again when nobody else holds it
        (saves decoding); otherwise the committed JSON is decoded afresh.
        """
        live = self._live.pop(check, None)
        if live is not None:
            return live
        encoded = self._encoded.get(check)
        return json.loads(encoded) if encoded else {}

    def has_reading(self, check: str) -> bool:
        """True when ``check`` committed a non-empty store (a previous reading to compare with).

        >>> store = StateStore(None)
        >>> store.has_reading("host.cpu"), store.commit("host.cpu", {"cpu": [1]})
        (False, True)
        >>> store.has_reading("host.cpu")
        True
        """
        encoded = self._encoded.get(check)
        return bool(encoded) and encoded != "{}"

    def snapshot(self, check: str) -> MutableMapping[str, Any]:
        """A private copy of ``check``'s committed store for a run whose state is not kept
        (an inspection's extra run): the live object stays for the scheduled run."""
        encoded = self._encoded.get(check)
        return json.loads(encoded) if encoded else {}

    def commit(self, check: str, store: MutableMapping[str, Any]) -> bool:
        """Keep ``store`` as ``check``'s state. False (state unchanged) if not JSON-serialisable.

        The caller hands ``store`` over: it must not touch it afterwards.
        """
        if type(store) is dict and not store:
            # Most checks keep nothing: what the encoder and the shape test would conclude.
            if self._encoded.get(check) != "{}":
                self._encoded[check] = "{}"
                self.dirty = True
            self._live[check] = store
            return True
        try:
            encoded = self._encoder.encode(store)
        except (TypeError, ValueError) as exc:
            log.warning("check %s left a store that is not JSON-serialisable (%s); not kept", check, exc)
            return False
        if self._encoded.get(check) != encoded:
            self._encoded[check] = encoded
            self.dirty = True
        if _is_json_shaped(store):
            self._live[check] = store
        return True

    def save(self) -> None:
        """Write every store atomically if anything changed. Raises OSError on failure."""
        if self.path is None or not self.dirty:
            return
        body = ",".join(f"{json.dumps(name)}:{text}" for name, text in sorted(self._encoded.items()))
        payload = f'{{"version":{_FORMAT_VERSION},"checks":{{{body}}}}}\n'
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.dirty = False


def _is_json_shaped(store: MutableMapping[str, Any]) -> bool:
    """True when a JSON round trip would give back an equal store (no tuples, int keys...).

    Only then may the object itself serve the next run; otherwise the next run gets the
    decoded JSON, as it would after a restart, so behaviour never depends on a restart.
    """
    return all(type(k) is str for k in store) and all(
        type(v) in _SCALARS or _plain(v) for v in store.values()
    )


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    # Scalars are tested inline below: rates keep one counter per process or device,
    # and a function call per counter would cost more than the JSON encoding.
    if kind is list:
        return all(type(v) in _SCALARS or _plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str for k in value) and all(
            type(v) in _SCALARS or _plain(v) for v in value.values()
        )
    return False
