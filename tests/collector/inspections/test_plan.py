"""Inspection plans: loading, validation errors by file and path, host selection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from checks.api import Layer
from collector.cli.config import ConfigError
from collector.inspections.plan import InspectionPlan, SelectorError, load_plan, parse_plan, select_hosts

GOOD = """\
name: acme-monthly
customer: acme
timezone: Asia/Shanghai
schedule: "0 2 1 * *"
hosts:
  names: ["db*", web1]
  labels: {env: prod}
  exclude: [db-test*]
layers: [storage]
checks:
  network.dns: {}
  storage.filesystem:
    params: {exclude_fstypes: ["nfs*"]}
recipients: [ops@acme.example]
language: zh-CN
answer_deadline: 10m
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def base(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {"name": "p", "customer": "acme", "timezone": "UTC", "schedule": "@daily"}
    data.update(changes)
    return data


def errors(data: object, timezones: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_plan(data, "plans/p.yaml", timezones)
    return str(caught.value).splitlines()


def test_good_plan_loads(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD))
    assert plan.name == "acme-monthly" and plan.language == "zh-CN"
    assert plan.answer_deadline == timedelta(minutes=10)
    assert plan.layers == (Layer.STORAGE,)
    assert plan.check_names() == (
        "network.dns",
        "storage.disk_io",
        "storage.filesystem",
        "storage.forecast",
        "storage.readonly",
    )
    assert plan.check_params()["storage.filesystem"].model_dump()["exclude_fstypes"] == ["nfs*"]
    # the schedule runs on the customer's wall clock
    after = datetime(2025, 6, 15, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert plan.cron().next_after(after).isoformat() == "2025-07-01T02:00:00+08:00"


def test_no_layers_or_checks_means_every_default_check() -> None:
    from checks.registry import all_checks

    plan = parse_plan(base())
    assert plan.check_names() == tuple(n for n, c in all_checks().items() if c.default_enabled)
    assert "application.nagios" not in plan.check_names()  # not enabled by default
    assert "application.nagios" in parse_plan(base(checks=["application.nagios"])).check_names()


def test_timezone_filled_from_the_customer_settings() -> None:
    data = base()
    del data["timezone"]
    assert parse_plan(data, timezones={"acme": "Europe/Berlin"}).timezone == "Europe/Berlin"
    assert errors(data) == ["plans/p.yaml: timezone: required key is missing"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            base(schedule="61 * * * *"),
            [
                "plans/p.yaml: schedule: expected: minute: 61 is out "
                "of range 0-59 (cron '61 * * * *') (got '61 * * * *')"
            ],
            id="bad cron",
        ),
        pytest.param(
            base(schedule="0 2 * *"),
            [
                "plans/p.yaml: schedule: expected 5 fields (minute hour day-of-month month day-of-week), "
                "got 4 (cron '0 2 * *') (got '0 2 * *')"
            ],
            id="cron with four fields",
        ),
        pytest.param(
            base(checks=["storage.filesytem"]),
            [
                "plans/p.yaml: checks.storage.filesytem: unknown check 'storage.filesytem'; "
                "did you mean storage.filesystem, storage.forecast, storage.disk_io?"
            ],
            id="unknown check with close matches",
        ),
        pytest.param(
            base(checks=["nosuch.thing"]),
            [
                "plans/p.yaml: checks.nosuch.thing: unknown check "
                "'nosuch.thing'; known checks: host.clock, host.cpu, "
                "host.cpu_cores, host.file_descriptors, host.kernel_events, "
                "host.load, host.memory, host.oom_kills, "
                "host.pressure, host.processes, host.swap, host.top_consumers, ... (42 in all)"
            ],
            id="unknown check far from any",
        ),
        pytest.param(
            base(checks={"storage.filesystem": {"params": {"exclude_fstype": ["nfs"]}}}),
            [
                "plans/p.yaml: checks.storage.filesystem.params.exclude_fstype: unknown key; "
                "did you mean 'exclude_fstypes'?"
            ],
            id="override of an unknown parameter",
        ),
        pytest.param(
            base(checks={"host.load": {"params": {"levels_per_core": "high"}}}),
            [
                "plans/p.yaml: checks.host.load.params.levels_per_core: "
                "expected: input should be a valid tuple "
                "(got 'high')"
            ],
            id="override of the wrong type",
        ),
        pytest.param(
            base(checks={"host.load": {"parms": {}}}),
            ["plans/p.yaml: checks.host.load.parms: unknown key; did you mean 'params'?"],
            id="misspelt params",
        ),
        pytest.param(
            base(hosts={"name": ["db1"]}),
            ["plans/p.yaml: hosts.name: unknown key; did you mean 'names'?"],
            id="misspelt selector key",
        ),
        pytest.param(
            base(layers=["hosts"]),
            [
                "plans/p.yaml: layers: expected layer names (host, network, storage, platform, application), "
                "got 'hosts' (got ['hosts'])"
            ],
            id="unknown layer",
        ),
        pytest.param(
            base(language="fr"),
            ["plans/p.yaml: language: expected: input should be 'en' or 'zh-CN' (got 'fr')"],
            id="unsupported language",
        ),
        pytest.param(
            base(recipients=["not-an-address"]),
            [
                "plans/p.yaml: recipients: expected e-mail addresses "
                "such as ops@example.com, got 'not-an-address' "
                "(got ['not-an-address'])"
            ],
            id="bad recipient",
        ),
        pytest.param(
            base(answer_deadline="2d"),
            ["plans/p.yaml: answer_deadline: expected at most 24h, got '2d' (got '2d')"],
            id="deadline too long",
        ),
        pytest.param(
            base(timezone="Mars/Olympus"),
            [
                "plans/p.yaml: timezone: expected: unknown time zone "
                "'Mars/Olympus'; expected an IANA name such as "
                "'Asia/Shanghai' (got 'Mars/Olympus')"
            ],
            id="unknown zone",
        ),
        pytest.param(
            base(name="Acme Plan"),
            [
                "plans/p.yaml: name: expected lowercase letters, "
                "digits, '-', '_' or '.' (at most 100, starting "
                "with a letter or digit) (got 'Acme Plan')"
            ],
            id="bad plan name",
        ),
        pytest.param(
            {"customer": "acme", "timezone": "UTC", "schedule": "@daily", "colour": "red"},
            [
                "plans/p.yaml: name: required key is missing",
                "plans/p.yaml: colour: unknown key; valid keys here: "
                "answer_deadline, checks, customer, description, "
                "hosts, language, layers, name, recipients, schedule, thresholds, timezone",
            ],
            id="missing name and an unknown key",
        ),
        pytest.param(
            ["a", "list"],
            ["plans/p.yaml: expected a mapping (name, customer, schedule, ...) (got ['a', 'list'])"],
            id="not a mapping",
        ),
    ],
)
def test_bad_plans_name_file_and_path(data: object, expected: list[str]) -> None:
    assert errors(data) == expected


def test_every_problem_is_reported_at_once() -> None:
    lines = errors(base(checks={"storage.filesytem": {}, "host.load": {"params": {"nope": 1}}}))
    assert [line.split(": ")[1] for line in lines] == [
        "checks.storage.filesytem",
        "checks.host.load.params.nope",
    ]


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"missing.yaml: cannot read the plan file: No such file or directory"
    ):
        load_plan(tmp_path / "missing.yaml")
    with pytest.raises(
        ConfigError, match=r"plan.yaml: YAML syntax error at line 3, column 1: did not find expected ','"
    ):
        load_plan(write(tmp_path, "name: p\nhosts: [a\n"))
    with pytest.raises(ConfigError, match=r"plan.yaml: expected a mapping"):
        load_plan(write(tmp_path, ""))


# --------------------------------------------------------------------------- selecting hosts


@dataclass(frozen=True)
class Host:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    customer: str = "acme"


FLEET = [
    Host("db1", {"env": "prod"}),
    Host("db2", {"env": "prod-eu"}),
    Host("db-test1", {"env": "prod"}),
    Host("web1", {"env": "prod"}),
    Host("web2", {"env": "staging"}),
    Host("db9", {"env": "prod"}, customer="globex"),
]


def names(plan: InspectionPlan) -> list[str]:
    return [h.name for h in select_hosts(plan, FLEET)]


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        pytest.param({}, ["db-test1", "db1", "db2", "web1", "web2"], id="all of the customer's hosts"),
        pytest.param({"names": ["db*"]}, ["db-test1", "db1", "db2"], id="glob"),
        pytest.param({"names": ["web2", "db1"]}, ["db1", "web2"], id="exact names"),
        pytest.param({"labels": {"env": "prod"}}, ["db-test1", "db1", "web1"], id="label"),
        pytest.param({"labels": {"env": "prod*"}}, ["db-test1", "db1", "db2", "web1"], id="label glob"),
        pytest.param(
            {"names": ["db*"], "labels": {"env": "prod"}, "exclude": ["db-test*"]},
            ["db1"],
            id="all parts must match",
        ),
    ],
)
def test_select_hosts(hosts: dict[str, object], expected: list[str]) -> None:
    assert names(parse_plan(base(hosts=hosts))) == expected


def test_selector_matching_nothing_is_an_error() -> None:
    plan = parse_plan(base(hosts={"names": ["app*"], "labels": {"env": "prod"}}))
    with pytest.raises(SelectorError) as caught:
        select_hosts(plan, FLEET)
    assert str(caught.value) == (
        "plan 'p': host selector (names=app*; labels=env=prod) matches no host of customer 'acme'; "
        "the customer's hosts are: db-test1, db1, db2, web1, web2"
    )


def test_selector_never_crosses_customers() -> None:
    plan = parse_plan(base(customer="initech"))
    with pytest.raises(SelectorError, match="customer 'initech' has no hosts"):
        select_hosts(plan, FLEET)


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    import textwrap

    import collector.inspections.plan as plan_module

    doc = plan_module.__doc__ or ""
    example = doc.split("::\n", 1)[1].split("\n\n", 1)[0]
    plan = load_plan(write(tmp_path, textwrap.dedent(example)))
    assert plan.layers == (Layer.HOST, Layer.STORAGE) and plan.language == "zh-CN"
    assert plan.hosts.exclude == ("db-test*",) and "network.dns" in plan.check_names()
