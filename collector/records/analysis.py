# ruff: noqa: RUF001, E501  # full-width punctuation in Chinese text; bilingual sentences citing figures
"""The service-operation analysis (服务运行分析报告) of a customer's month or quarter.

Sections: (a) problem distribution by type, layer, host and product; (b) comparison with
the previous periods; (c) satisfaction (no survey data is kept yet: the section says so);
(d) problem rates per software version; (e) service cost from the time logged and the
contract's rates (without a contract on file, hours only, and it says so); (f) a summary;
(g) recommendations from rules with thresholds, each citing the figures that fired it.

Versions are the hosts' current ones (their inventories): a host's problems are counted
against the version it runs now, which the report states.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from collector.records.build import Period, _label
from collector.records.model import Chart, Fact, Section, ServiceRecord, Table
from collector.reports.model import Customer, LocalText, SignOff
from collector.store.service_data import CaseFacts, PeriodCounts

__all__ = ["PREVIOUS_PERIODS", "THRESHOLDS", "Rates", "analysis_record"]

L = LocalText
PREVIOUS_PERIODS = 3
TOP = 10
"""Rows in the host and version tables."""


@dataclass(frozen=True, slots=True)
class Rates:
    """A contract's hourly rates (from the SLA contracts, when the desk has them)."""

    onsite: Decimal
    remote: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    growth: float = 0.25
    """Cases up this share on the previous periods' average ..."""
    growth_min_cases: int = 5
    """... and at least this many cases: recommend a review."""
    host_share: float = 0.30
    """One host with this share of the cases (and at least ``host_min_cases``)."""
    host_min_cases: int = 3
    layer_share: float = 0.40
    """One layer with this share of the classified cases (at least ``host_min_cases``)."""
    version_ratio: float = 2.0
    """A version with this many times the product's other versions' problem rate."""
    version_min_hosts: int = 2
    training_share: float = 0.30
    """Operation errors and training requests with this share of the routine cases."""
    unresolved_emergency: int = 1
    """Emergency cases still open at the end of the period."""


THRESHOLDS = Thresholds()

_LAYERS = {
    "host": ("host", "主机"),
    "network": ("network", "网络"),
    "storage": ("storage", "存储"),
    "platform": ("platform", "平台"),
    "application": ("application", "应用"),
}


def _layer(value: str | None) -> LocalText:
    if value is None:
        return L("not classified", "未分类")
    en, zh = _LAYERS.get(value, (value, value))
    return L(en, zh)


def _pct(part: float, whole: float) -> str:
    return "—" if not whole else f"{100 * part / whole:.0f}%"


def _dist(counter: Counter[str], label: object = None) -> tuple[tuple[str | LocalText, ...], ...]:
    total = sum(counter.values())
    rows: list[tuple[str | LocalText, ...]] = []
    for key, n in counter.most_common():
        shown: str | LocalText = label(key) if callable(label) else key
        rows.append((shown, str(n), _pct(n, total)))
    return tuple(rows)


_DIST_COLS = (L("Share", "占比"),)


@dataclass(frozen=True, slots=True)
class VersionRate:
    product: str
    version: str
    hosts: int
    cases: int

    @property
    def rate(self) -> float:
        return self.cases / self.hosts if self.hosts else 0.0


def version_rates(cases: Sequence[CaseFacts], products: dict[str, dict[str, str]]) -> list[VersionRate]:
    """Cases per host for each (product, version) the hosts run now."""
    hosts_on: Counter[tuple[str, str]] = Counter()
    for host_products in products.values():
        for product, version in host_products.items():
            hosts_on[(product, version)] += 1
    cases_on: Counter[tuple[str, str]] = Counter()
    for case in cases:
        seen: set[tuple[str, str]] = set()
        for host in case.hosts:
            seen.update(products.get(host, {}).items())
        for key in seen:
            cases_on[key] += 1
    return sorted(
        (VersionRate(p, v, n, cases_on[(p, v)]) for (p, v), n in hosts_on.items()),
        key=lambda r: (-r.rate, r.product, r.version),
    )


def _recommendations(
    cases: Sequence[CaseFacts],
    history: Sequence[tuple[str, PeriodCounts]],
    rates: Sequence[VersionRate],
    period: Period,
    t: Thresholds,
) -> list[LocalText]:
    out: list[LocalText] = []
    n = len(cases)
    earlier = [c.opened for _, c in history[1:]]
    if earlier:
        avg = sum(earlier) / len(earlier)
        if n >= t.growth_min_cases and avg > 0 and n >= avg * (1 + t.growth):
            out.append(
                L(
                    f"Cases rose to {n} from an average of {avg:.1f} over the previous {len(earlier)} periods "
                    f"(+{100 * (n / avg - 1):.0f}%, threshold +{100 * t.growth:.0f}%): review the causes below "
                    "with the customer and plan preventive work.",
                    f"服务事项增至 {n} 个，前 {len(earlier)} 个周期平均 {avg:.1f} 个"
                    f"（+{100 * (n / avg - 1):.0f}%，阈值 +{100 * t.growth:.0f}%）：建议与客户一同分析下列原因并安排预防性工作。",
                )
            )
    hosts = Counter(h for c in cases for h in c.hosts)
    if hosts:
        host, k = hosts.most_common(1)[0]
        if k >= t.host_min_cases and k / n >= t.host_share:
            out.append(
                L(
                    f"Host {host} was involved in {k} of {n} cases ({_pct(k, n)}, threshold "
                    f"{100 * t.host_share:.0f}%): inspect it in depth (capacity, hardware, configuration).",
                    f"主机 {host} 涉及 {n} 个服务事项中的 {k} 个（{_pct(k, n)}，阈值 {100 * t.host_share:.0f}%）："
                    "建议对其进行深度巡检（容量、硬件、配置）。",
                )
            )
    layers = Counter(c.layer for c in cases if c.layer is not None)
    classified = sum(layers.values())
    if layers:
        layer, k = layers.most_common(1)[0]
        if k >= t.host_min_cases and k / classified >= t.layer_share:
            name = _layer(layer)
            out.append(
                L(
                    f"The {name.en} layer caused {k} of {classified} detected problems ({_pct(k, classified)}, "
                    f"threshold {100 * t.layer_share:.0f}%): strengthen its monitoring and capacity planning.",
                    f"{name.zh_cn}层导致了 {classified} 个检测到的问题中的 {k} 个（{_pct(k, classified)}，"
                    f"阈值 {100 * t.layer_share:.0f}%）：建议加强该层的监控与容量规划。",
                )
            )
    by_product: dict[str, list[VersionRate]] = {}
    for r in rates:
        by_product.setdefault(r.product, []).append(r)
    for product, versions in sorted(by_product.items()):
        for r in versions:
            others = [o for o in versions if o.version != r.version]
            other_hosts = sum(o.hosts for o in others)
            if r.hosts < t.version_min_hosts or not other_hosts or not r.cases:
                continue
            other_rate = sum(o.cases for o in others) / other_hosts
            if r.rate >= t.version_ratio * max(other_rate, 1e-9) and r.rate > other_rate:
                out.append(
                    L(
                        f"{product} {r.version} had {r.rate:.2f} cases per host ({r.cases} cases, {r.hosts} hosts), "
                        f"against {other_rate:.2f} on its other versions (threshold {t.version_ratio:.0f}×): "
                        f"plan the upgrade of these hosts.",
                        f"{product} {r.version} 每台主机 {r.rate:.2f} 个服务事项（{r.cases} 个事项，{r.hosts} 台主机），"
                        f"其他版本为 {other_rate:.2f}（阈值 {t.version_ratio:.0f} 倍）：建议规划这些主机的升级。",
                    )
                )
    routine = [c for c in cases if c.type == "routine"]
    training = [c for c in routine if c.subtype in ("operation_error", "user_training")]
    if len(training) >= t.host_min_cases and len(training) / len(routine) >= t.training_share:
        out.append(
            L(
                f"{len(training)} of {len(routine)} routine cases were operation errors or training requests "
                f"({_pct(len(training), len(routine))}, threshold {100 * t.training_share:.0f}%): "
                "offer the customer's operators a training session.",
                f"{len(routine)} 个日常事项中有 {len(training)} 个为操作错误或培训需求"
                f"（{_pct(len(training), len(routine))}，阈值 {100 * t.training_share:.0f}%）：建议为客户的操作人员安排培训。",
            )
        )
    open_emergency = [
        c for c in cases if c.type == "emergency" and (c.resolved_at is None or c.resolved_at >= period.end)
    ]
    if len(open_emergency) >= t.unresolved_emergency:
        ids = ", ".join(c.id for c in open_emergency[:5])
        out.append(
            L(
                f"{len(open_emergency)} emergency cases opened in the period were not resolved by its end ({ids}): "
                "follow them up with the customer.",
                f"本期受理的 {len(open_emergency)} 个应急事项在期末仍未解决（{ids}）：建议与客户跟进。",
            )
        )
    return out


def analysis_record(
    customer: Customer,
    signoff: SignOff,
    period: Period,
    cases: Sequence[CaseFacts],
    history: Sequence[tuple[str, PeriodCounts]],
    products: dict[str, dict[str, str]],
    rates: Rates | None,
    now: float,
    thresholds: Thresholds = THRESHOLDS,
) -> ServiceRecord:
    """The analysis of ``period``; ``history``: (period name, counts), this period first,
    then the previous ones, newest first."""
    n = len(cases)
    types = Counter(c.type for c in cases)
    layers = Counter(c.layer or "" for c in cases if c.type == "emergency" or c.layer)
    hosts = Counter(h for c in cases for h in c.hosts)
    product_cases = Counter(p for c in cases for p in {p for h in c.hosts for p in products.get(h, {})})
    rates_by_version = version_rates(cases, products)
    current = history[0][1]
    hours = (current.onsite_minutes + current.remote_minutes) / 60
    layer_label = lambda key: _layer(key or None)  # noqa: E731
    distribution = Section(
        L("Problem distribution", "问题分布"),
        text=(L(f"{n} cases were opened in {period.name}.", f"{period.name} 期间共受理 {n} 个服务事项。"),),
        charts=(
            Chart(L("By type", "按类型"), tuple((_label(k).en, float(v)) for k, v in types.most_common())),
            Chart(
                L("By layer", "按层次"),
                tuple((_layer(k or None).en, float(v)) for k, v in layers.most_common()),
            ),
        ),
        table=Table((L("Type", "类型"), L("Cases", "事项数"), *_DIST_COLS), _dist(types, _label)),
    )
    by_layer = Section(
        L("By layer (detected problems)", "按层次（检测到的问题）"),
        table=Table((L("Layer", "层次"), L("Cases", "事项数"), *_DIST_COLS), _dist(layers, layer_label)),
    )
    by_host = Section(
        L("By host (top 10)", "按主机（前 10）"),
        table=Table(
            (L("Host", "主机"), L("Cases", "事项数"), *_DIST_COLS),
            tuple((h, str(k), _pct(k, n)) for h, k in hosts.most_common(TOP)),
        ),
    )
    by_product = Section(
        L("By product", "按产品"),
        table=Table(
            (L("Product", "产品"), L("Cases", "事项数"), *_DIST_COLS),
            tuple((p, str(k), _pct(k, n)) for p, k in product_cases.most_common(TOP)),
            L("No case involved a host with a product inventory.", "无服务事项涉及有产品清单的主机。"),
        ),
    )
    comparison = Section(
        L("Comparison with previous periods", "与以往周期比较"),
        charts=(
            Chart(
                L("Cases opened per period", "各周期受理事项数"),
                tuple((name, float(c.opened)) for name, c in reversed(history)),
            ),
        ),
        table=Table(
            (
                L("Period", "周期"),
                L("Opened", "受理"),
                L("Emergency", "应急"),
                L("Resolved", "解决"),
                L("Hours logged", "登记工时"),
            ),
            tuple(
                (
                    name,
                    str(c.opened),
                    str(c.emergency),
                    str(c.resolved),
                    f"{(c.onsite_minutes + c.remote_minutes) / 60:.1f}",
                )
                for name, c in history
            ),
        ),
    )
    satisfaction = Section(
        L("Customer satisfaction", "客户满意度"),
        text=(
            L(
                "No satisfaction surveys are recorded yet, so there are no results or trends to show.",
                "尚未记录满意度调查，因此没有可展示的结果或趋势。",
            ),
        ),
    )
    versions = Section(
        L("Problem rates per software version", "各软件版本的问题率"),
        text=(
            L(
                "Cases per host, counted against the version each host runs now (its latest inventory).",
                "每台主机的服务事项数，按各主机当前运行的版本（最新清单）统计。",
            ),
        ),
        table=Table(
            (
                L("Product", "产品"),
                L("Version", "版本"),
                L("Hosts", "主机数"),
                L("Cases", "事项数"),
                L("Cases per host", "每主机事项数"),
            ),
            tuple(
                (r.product, r.version, str(r.hosts), str(r.cases), f"{r.rate:.2f}")
                for r in rates_by_version[:TOP]
            ),
            L("No host reported a product inventory.", "无主机上报产品清单。"),
        ),
    )
    cost_facts = [
        Fact(L("On site (hours)", "现场（小时）"), f"{current.onsite_minutes / 60:.1f}"),
        Fact(L("Remote (hours)", "远程（小时）"), f"{current.remote_minutes / 60:.1f}"),
    ]
    cost_value: str | None = None
    if rates is not None:
        total = (
            rates.onsite * Decimal(current.onsite_minutes) / 60
            + rates.remote * Decimal(current.remote_minutes) / 60
        )
        cost_value = f"{total.quantize(Decimal('0.01'))} {rates.currency}"
        cost_facts.append(Fact(L("Cost", "费用"), cost_value))
    cost = Section(
        L("Service cost", "服务成本"),
        text=()
        if rates is not None
        else (
            L(
                "No contract with hourly rates is on file for this customer: the hours are shown without a cost.",
                "该客户没有含小时费率的合同记录：仅显示工时，不计算费用。",
            ),
        ),
        facts=tuple(cost_facts),
    )
    advice = _recommendations(cases, history, rates_by_version, period, thresholds)
    recommendations = Section(
        L("Recommendations", "建议"),
        text=tuple(advice) or (L("No threshold was crossed in this period.", "本期没有指标超过阈值。"),),
    )
    emergency = types.get("emergency", 0)
    summary = L(
        f"In {period.name}, {n} cases were opened ({emergency} emergency) and {current.resolved} resolved; "
        f"{hours:.1f} hours of service were logged; {len(advice)} recommendations follow from the figures.",
        f"{period.name} 期间受理 {n} 个服务事项（其中应急 {emergency} 个），解决 {current.resolved} 个；"
        f"登记服务工时 {hours:.1f} 小时；根据数据提出 {len(advice)} 条建议。",
    )
    return ServiceRecord(
        kind="analysis",
        subject=period.name,
        customer=customer,
        signoff=signoff,
        generated_at=datetime.fromtimestamp(now, UTC),
        facts=(
            Fact(L("Customer", "客户"), customer.name),
            Fact(L("Period", "周期"), period.name),
        ),
        sections=(
            distribution,
            by_layer,
            by_host,
            by_product,
            comparison,
            satisfaction,
            versions,
            cost,
            recommendations,
        ),
        summary=summary,
        extra={
            "cases": n,
            "by_type": dict(types),
            "by_layer": {k or "unclassified": v for k, v in layers.items()},
            "history": [{"period": name, "opened": c.opened, "resolved": c.resolved} for name, c in history],
            "minutes": {"onsite": current.onsite_minutes, "remote": current.remote_minutes},
            "cost": cost_value,
            "surveys": None,
            "recommendations": len(advice),
        },
    )
