"""Silent agents: one agent's silence, or a site outage? (the engine's *Silent agents* rule).

An AGENT_SILENT signal waits here ``silent_settle_s`` (agents of one site fall silent a
few seconds apart); :meth:`SilentAgents.judge` then weighs it against its scope, the
customer's hosts with the same network label (all its known hosts when unlabelled), and
yields a verdict: :class:`Alone` (a problem signal like any other, with the number of
neighbours still reporting as evidence) or :class:`Outage` (every silent agent of the
scope whose onset lies within ``window_s``). The engine applies each verdict before the
next is judged, so a verdict sees the incidents the previous one changed.

Pure: the roster and the waiting signals are part of the engine's saved state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from collector.incidents.config import EngineConfig
from collector.incidents.model import Incident
from collector.incidents.signals import Signal, SignalKind

__all__ = ["Alone", "Outage", "SilentAgents"]


@dataclass(slots=True)
class _Pending:
    signal: Signal
    arrived: float


@dataclass(frozen=True, slots=True)
class Alone:
    """A silent agent whose neighbours keep reporting: an incident like any signal's."""

    signal: Signal


@dataclass(frozen=True, slots=True)
class Outage:
    """Agents of one scope silent together: ``silent`` of ``total`` hosts."""

    customer: str
    network: str | None
    signals: tuple[Signal, ...]
    silent: set[str]
    total: int


class SilentAgents:
    """The customers' rosters (host -> network label) and the silent agents still settling."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._pending: list[_Pending] = []
        self._hosts: dict[str, dict[str, str | None]] = {}

    def set_hosts(self, customer: str, hosts: Mapping[str, str | None]) -> None:
        self._hosts[customer] = dict(hosts)

    def learn(self, signal: Signal) -> None:
        """A host seen in a signal joins its customer's roster, unlabelled."""
        if signal.host is not None:
            self._hosts.setdefault(signal.customer, {}).setdefault(signal.host, None)

    def wait(self, signal: Signal, now: float) -> None:
        """Hold an AGENT_SILENT until it settles (once per host)."""
        same = (signal.customer, signal.host)
        if not any((p.signal.customer, p.signal.host) == same for p in self._pending):
            self._pending.append(_Pending(signal, now))

    def back(self, signal: Signal) -> bool:
        """Drop the waiting silence ``signal`` (a recovery) ends; whether there was one."""
        for p in self._pending:
            if (p.signal.customer, p.signal.host, p.signal.series) == (
                signal.customer,
                signal.host,
                signal.series,
            ):
                self._pending.remove(p)
                return True
        return False

    def scope(self, customer: str, host: str) -> tuple[str | None, set[str]]:
        """The host's network label and the hosts sharing it (all known hosts when None)."""
        roster = self._hosts.get(customer, {})
        network = roster.get(host)
        scope = set(roster) if network is None else {h for h, n in roster.items() if n == network}
        scope.add(host)
        return network, scope

    def judge(self, now: float, open_of: Callable[[str], list[Incident]]) -> Iterator[Alone | Outage]:
        """Verdicts on the settled silences, earliest first; ``open_of(customer)`` gives the
        open incidents (their silent members count towards an outage)."""
        cfg = self.config
        # bounded: every verdict removes at least one pending signal
        for _ in range(len(self._pending)):
            due = [p for p in self._pending if p.arrived + cfg.silent_settle_s <= now]
            if not due:
                return
            first = min(
                due, key=lambda p: (p.arrived, p.signal.onset_ts, p.signal.customer, p.signal.host or "")
            )
            signal = first.signal
            customer, host = signal.customer, signal.host or ""
            network, scope = self.scope(customer, host)

            def near(onset: float, ref: float = signal.onset_ts) -> bool:
                return abs(onset - ref) <= cfg.window_s

            batch = [
                p
                for p in self._pending
                if p.signal.customer == customer and p.signal.host in scope and near(p.signal.onset_ts)
            ]
            silent = {p.signal.host or "" for p in batch}
            for inc in open_of(customer):
                for (h, _), m in inc.members.items():
                    silent_member = m.active and m.signal.kind is SignalKind.AGENT_SILENT
                    if h in scope and silent_member and near(m.first_onset_ts):
                        silent.add(h)
            total = len(scope)
            outage = len(silent) >= cfg.outage_min_hosts and len(silent) >= cfg.outage_fraction * total
            extra = {"neighbours": total - 1, "neighbours_reporting": total - len(silent), "network": network}
            if not outage:
                self._pending.remove(first)
                yield Alone(signal.with_evidence(**extra))
                continue
            for p in batch:
                self._pending.remove(p)
            batch.sort(key=lambda p: (p.signal.onset_ts, p.signal.host or ""))
            signals = tuple(p.signal.with_evidence(**extra) for p in batch)
            yield Outage(customer, network, signals, silent, total)

    def to_state(self) -> dict[str, Any]:
        """The ``pending`` and ``hosts`` parts of the engine's state."""
        return {
            "pending": [{"signal": p.signal.to_dict(), "arrived": p.arrived} for p in self._pending],
            "hosts": {c: dict(h) for c, h in self._hosts.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: EngineConfig) -> SilentAgents:
        """Rebuilt from :meth:`to_state`'s parts (KeyError, TypeError on a malformed state)."""
        silent = cls(config)
        silent._pending = [
            _Pending(Signal.from_dict(p["signal"]), float(p["arrived"])) for p in state["pending"]
        ]
        silent._hosts = {
            str(c): {str(h): None if n is None else str(n) for h, n in hs.items()}
            for c, hs in state["hosts"].items()
        }
        return silent
