"""network.interfaces: link state, speed, throughput, errors and drops per interface.

Counters come from ``/proc/net/dev`` (one read for every interface). Link state comes
from ``/sys/class/net/<if>/carrier`` (0/1; refused while administratively down, when
``flags`` is read instead for IFF_UP), ``operstate`` (read only to explain a missing
carrier) and ``speed`` (Mbit/s; refused or -1 on virtual links). Sample of
what :func:`collect_interfaces` returns::

    InterfacesSection(timestamp=1700000000.0, interfaces=(
        InterfaceState(name='eth0', admin_up=True, operstate='up', carrier=True,
                       speed_mbps=10000, rx_bytes=119203263, rx_packets=2961, rx_errors=0,
                       rx_drops=0, tx_bytes=170755, tx_packets=1787, tx_errors=0, tx_drops=0),),
        missing=())
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
    check_levels,
    get_rate,
)
from checks.network._common import NetDevCounters, matches_any, read_net_dev
from checks.probe import Probe

IFF_UP = 0x1


@dataclass(frozen=True, slots=True)
class InterfaceState:
    name: str
    admin_up: bool
    operstate: str
    """Read only when there is no carrier (to say why); ``up`` otherwise."""
    carrier: bool | None
    """None when the kernel will not say (the interface is administratively down)."""
    speed_mbps: int | None
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_drops: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_drops: int

    @property
    def link_up(self) -> bool:
        return self.admin_up and self.carrier is True


@dataclass(frozen=True, slots=True)
class InterfacesSection:
    timestamp: float
    interfaces: tuple[InterfaceState, ...]
    missing: tuple[str, ...]
    """Interfaces listed in ``expected_up`` that do not exist."""


class InterfacesParams(CheckParams):
    include: tuple[str, ...] = ("*",)
    """Shell-style patterns of interface names to check."""
    exclude: tuple[str, ...] = ("lo",)
    """Patterns of interface names to skip (applied after ``include``)."""
    expected_up: tuple[str, ...] = ()
    """Interfaces that must be up: down or missing is critical (IFACE_DOWN / IFACE_MISSING)."""
    levels_errors_per_second: Levels = (0.1, 1.0)
    """(warn, crit) for receive plus transmit errors per second on one interface."""
    levels_drops_per_second: Levels = (10.0, 100.0)
    """(warn, crit) for receive plus transmit drops per second on one interface."""
    levels_utilisation_percent: Levels | None = Field(default=None)
    """(warn, crit) for the busier direction's share of the link speed; None: not checked."""


def _read_interface(probe: Probe, name: str, c: NetDevCounters) -> InterfaceState | None:
    """Link state from sysfs in as few reads as possible (each costs ~15 µs of kernel time).

    ``carrier`` answers 0 or 1 while the interface is administratively up and is
    refused (EINVAL) while it is down; only then is ``flags`` read to confirm (IFF_UP).
    ``operstate`` is read only to explain a missing carrier, ``speed`` only for a
    working link. None: the interface vanished since ``/proc/net/dev`` was read.
    """
    base = f"/sys/class/net/{name}"
    carrier: bool | None = None
    admin_up = True
    try:
        carrier_text = probe.read_text(f"{base}/carrier").strip()
    except OSError:  # EINVAL while down (or no such file): flags decide below
        try:
            flags_text = probe.read_text(f"{base}/flags").strip()
        except FileNotFoundError:  # removed between the two reads (container churn): skip it
            return None
        try:
            admin_up = bool(int(flags_text, 16) & IFF_UP)
        except ValueError:
            raise ValueError(f"{base}/flags: expected a hex number, got {flags_text[:40]!r}") from None
    else:
        if carrier_text not in ("0", "1"):
            raise ValueError(f"{base}/carrier: expected 0 or 1, got {carrier_text[:40]!r}")
        carrier = carrier_text == "1"
    operstate = "up"
    speed: int | None = None
    if carrier:
        speed = _read_speed(probe, f"{base}/speed")
    elif admin_up:
        operstate = probe.read_text(f"{base}/operstate").strip().lower()
        if not operstate.isalpha():
            raise ValueError(f"{base}/operstate: expected a word such as 'down', got {operstate[:40]!r}")
    else:
        operstate = "down"
    return InterfaceState(
        name,
        admin_up,
        operstate,
        carrier,
        speed,
        c.rx_bytes,
        c.rx_packets,
        c.rx_errors,
        c.rx_drops,
        c.tx_bytes,
        c.tx_packets,
        c.tx_errors,
        c.tx_drops,
    )


def _read_speed(probe: Probe, path: str) -> int | None:
    try:
        text = probe.read_text(path).strip()
    except OSError:  # EINVAL or no file: the driver does not report a speed (virtual links)
        return None
    try:
        speed = int(text)
    except ValueError:
        raise ValueError(f"{path}: expected Mbit/s, got {text[:40]!r}") from None
    return speed if speed > 0 else None  # -1 or 0: unknown


def collect_interfaces(probe: Probe, params: InterfacesParams) -> InterfacesSection:
    devices = read_net_dev(probe)
    states = []
    for name, counters in devices.items():
        if name in params.expected_up or (
            matches_any(name, params.include) and not matches_any(name, params.exclude)
        ):
            state = _read_interface(probe, name, counters)
            if state is not None:
                states.append(state)
    present = {state.name for state in states}
    missing = tuple(name for name in params.expected_up if name not in present)
    return InterfacesSection(probe.now(), tuple(states), missing)


_COUNTERS = (
    "rx_bytes",
    "tx_bytes",
    "rx_packets",
    "tx_packets",
    "rx_errors",
    "tx_errors",
    "rx_drops",
    "tx_drops",
)
_METRIC_OF = {
    "rx_bytes": ("net_rx_bytes_per_second", Unit.BYTES_PER_SECOND),
    "tx_bytes": ("net_tx_bytes_per_second", Unit.BYTES_PER_SECOND),
    "rx_packets": ("net_rx_packets_per_second", Unit.PER_SECOND),
    "tx_packets": ("net_tx_packets_per_second", Unit.PER_SECOND),
    "rx_errors": ("net_rx_errors_per_second", Unit.PER_SECOND),
    "tx_errors": ("net_tx_errors_per_second", Unit.PER_SECOND),
    "rx_drops": ("net_rx_drops_per_second", Unit.PER_SECOND),
    "tx_drops": ("net_tx_drops_per_second", Unit.PER_SECOND),
}


def _link_results(params: InterfacesParams, iface: InterfaceState, store: ValueStore) -> Result:
    seen_up_key = f"up:{iface.name}"
    expected = iface.name in params.expected_up
    if iface.link_up:
        store[seen_up_key] = True
        speed = f", {iface.speed_mbps} Mbit/s" if iface.speed_mbps else ""
        return Result(Severity.OK, "OK", f"Link up ({iface.operstate}{speed})", iface.name)
    if not iface.admin_up:
        # Taken down on purpose: forget it was up, so only an expected link complains.
        store.pop(seen_up_key, None)
        if expected:
            return Result(Severity.CRIT, "IFACE_DOWN", "Administratively down (expected up)", iface.name)
        return Result(Severity.OK, "OK", "Administratively down", iface.name)
    text = f"No link (admin up, operstate {iface.operstate}, carrier {_carrier_text(iface.carrier)})"
    if expected:
        return Result(Severity.CRIT, "IFACE_DOWN", f"{text}; expected up", iface.name)
    if store.get(seen_up_key):
        # It was up before and nobody took it down: a lost link. Warn until it returns
        # (or an admin downs it), not just for one cycle.
        return Result(Severity.WARN, "IFACE_DOWN", f"{text}; was up before", iface.name)
    return Result(Severity.OK, "OK", f"{text}; never seen up, not expected up", iface.name)


def _carrier_text(carrier: bool | None) -> str:
    return "unknown" if carrier is None else ("1" if carrier else "0")


def evaluate_interfaces(
    params: InterfacesParams, section: InterfacesSection, store: ValueStore
) -> Iterator[Result | Metric]:
    for name in section.missing:
        yield Result(Severity.CRIT, "IFACE_MISSING", "Interface does not exist (expected up)", name)
    now = section.timestamp
    for iface in section.interfaces:
        labels = {"interface": iface.name}
        yield _link_results(params, iface, store)
        yield Metric("net_link_up_boolean", 1.0 if iface.link_up else 0.0, Unit.BOOLEAN, labels)
        if iface.speed_mbps:
            yield Metric(
                "net_link_speed_bytes_per_second", iface.speed_mbps * 125_000, Unit.BYTES_PER_SECOND, labels
            )
        rates: dict[str, float] = {}
        for counter in _COUNTERS:
            rate = get_rate(store, f"if:{iface.name}:{counter}", now, getattr(iface, counter))
            if rate is not None:
                rates[counter] = rate
                name, unit = _METRIC_OF[counter]
                yield Metric(name, rate, unit, labels)
        if not rates:
            continue  # first run or counter reset: no rates yet
        errors = rates["rx_errors"] + rates["tx_errors"]
        drops = rates["rx_drops"] + rates["tx_drops"]
        yield check_levels(
            errors,
            key="IFACE_ERRORS",
            label="Errors (rx+tx)",
            levels_upper=params.levels_errors_per_second,
            render=_per_second,
            item=iface.name,
        )
        yield check_levels(
            drops,
            key="IFACE_DROPS",
            label="Drops (rx+tx)",
            levels_upper=params.levels_drops_per_second,
            render=_per_second,
            item=iface.name,
        )
        if iface.speed_mbps:
            busiest = max(rates["rx_bytes"], rates["tx_bytes"]) / (iface.speed_mbps * 125_000) * 100
            yield Metric("net_link_utilisation_percent", busiest, Unit.PERCENT, labels)
            if params.levels_utilisation_percent is not None:
                yield check_levels(
                    busiest,
                    key="IFACE_SATURATED",
                    label="Link utilisation (busier direction)",
                    levels_upper=params.levels_utilisation_percent,
                    render=lambda v: f"{v:.1f}%",
                    item=iface.name,
                )
    _forget_vanished(store, {iface.name for iface in section.interfaces})


def _per_second(value: float) -> str:
    return f"{value:.2f}/s"


def _forget_vanished(store: ValueStore, present: set[str]) -> None:
    """Drop state of interfaces that no longer exist, so container churn (veth*) cannot
    grow the store without bound."""
    for key in list(store):
        kind, _, rest = key.partition(":")
        if kind == "up":
            name = rest
        elif kind == "if":
            name = rest.rpartition(":")[0]
        else:
            continue
        if name not in present:
            del store[key]


_LABELS = ("interface",)

INTERFACES = Check(
    name="network.interfaces",
    layer=Layer.NETWORK,
    summary="Link state, speed, throughput, errors and drops per network interface",
    collect=collect_interfaces,
    evaluate=evaluate_interfaces,
    params=InterfacesParams,
    keys=("IFACE_DOWN", "IFACE_MISSING", "IFACE_ERRORS", "IFACE_DROPS", "IFACE_SATURATED"),
    metrics=(
        MetricSpec(
            "net_link_up_boolean", Unit.BOOLEAN, "1 when the link is up", Direction.DOWN_IS_BAD, _LABELS
        ),
        MetricSpec(
            "net_link_speed_bytes_per_second",
            Unit.BYTES_PER_SECOND,
            "Negotiated link speed (driver-reported Mbit/s as bytes/s)",
            Direction.DOWN_IS_BAD,
            _LABELS,
        ),
        MetricSpec(
            "net_rx_bytes_per_second", Unit.BYTES_PER_SECOND, "Bytes received", Direction.NEUTRAL, _LABELS
        ),
        MetricSpec(
            "net_tx_bytes_per_second", Unit.BYTES_PER_SECOND, "Bytes sent", Direction.NEUTRAL, _LABELS
        ),
        MetricSpec(
            "net_rx_packets_per_second", Unit.PER_SECOND, "Packets received", Direction.NEUTRAL, _LABELS
        ),
        MetricSpec("net_tx_packets_per_second", Unit.PER_SECOND, "Packets sent", Direction.NEUTRAL, _LABELS),
        MetricSpec(
            "net_rx_errors_per_second", Unit.PER_SECOND, "Receive errors", Direction.UP_IS_BAD, _LABELS
        ),
        MetricSpec(
            "net_tx_errors_per_second", Unit.PER_SECOND, "Transmit errors", Direction.UP_IS_BAD, _LABELS
        ),
        MetricSpec(
            "net_rx_drops_per_second",
            Unit.PER_SECOND,
            "Received packets dropped",
            Direction.UP_IS_BAD,
            _LABELS,
        ),
        MetricSpec(
            "net_tx_drops_per_second",
            Unit.PER_SECOND,
            "Packets dropped on send",
            Direction.UP_IS_BAD,
            _LABELS,
        ),
        MetricSpec(
            "net_link_utilisation_percent",
            Unit.PERCENT,
            "Busier direction's throughput as a share of the link speed",
            Direction.UP_IS_BAD,
            _LABELS,
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
