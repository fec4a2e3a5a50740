from __future__ import annotations

import math
import shutil
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.application.nagios import (
    NagiosParams,
    NagiosSection,
    PerfDatum,
    PluginRun,
    PluginSpec,
    Range,
    collect_nagios,
    evaluate_nagios,
    parse_output,
    parse_perfdata,
    parse_range,
)
from checks.probe import Probe

PLUGINS = Path("/usr/lib/nagios/plugins")
SCRIPTS = Path(__file__).parents[2] / "fixtures" / "app-nagios"
needs_plugins = pytest.mark.skipif(
    not (PLUGINS / "check_disk").exists(), reason="Debian's monitoring-plugins-basic is not installed"
)


def run_one(
    *command: str, name: str = "p", timeout_s: float = 10.0, budget_s: float = 50.0
) -> list[Result | Metric]:
    params = NagiosParams(
        plugins=(PluginSpec(name=name, command=command, timeout_s=timeout_s),), budget_s=budget_s
    )
    section = collect_nagios(Probe(), params)
    return list(evaluate_nagios(params, section, {}))


def results(out: list[Result | Metric]) -> list[Result]:
    return [o for o in out if isinstance(o, Result)]


def perf_metrics(out: list[Result | Metric]) -> dict[tuple[str, str], float]:
    return {
        (m.name, m.label_dict["label"]): m.value
        for m in out
        if isinstance(m, Metric) and m.name != "app_nagios_plugin_duration_seconds"
    }


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("10", Range(0, 10), id="plain end"),
        pytest.param("10:", Range(10, math.inf), id="open end"),
        pytest.param("~:10", Range(-math.inf, 10), id="negative infinity"),
        pytest.param("10:20", Range(10, 20), id="start and end"),
        pytest.param("@10:20", Range(10, 20, inside=True), id="inverted"),
        pytest.param(":5", Range(0, 5), id="empty start means zero"),
        pytest.param("-5:-1.5", Range(-5, -1.5), id="negative decimals"),
    ],
)
def test_parse_range(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["abc", "20:10", "1:x", "@"])
def test_parse_range_rejects_garbage(text):
    with pytest.raises(ValueError, match="range"):
        parse_range(text)


@pytest.mark.parametrize(
    ("rng", "value", "alerts"),
    [
        pytest.param("10", 11, True, id="10 alerts above"),
        pytest.param("10", -0.1, True, id="10 alerts below zero"),
        pytest.param("10", 10, False, id="10 is inclusive"),
        pytest.param("10:", 9, True, id="10: alerts below 10"),
        pytest.param("~:10", -1000, False, id="~:10 allows negatives"),
        pytest.param("10:20", 21, True, id="10:20 alerts outside"),
        pytest.param("@10:20", 10, True, id="@10:20 alerts inside inclusive"),
        pytest.param("@10:20", 21, False, id="@10:20 outside is fine"),
    ],
)
def test_range_alerts(rng, value, alerts):
    assert parse_range(rng).alerts(value) is alerts


@pytest.mark.parametrize(
    ("text", "items", "errors"),
    [
        pytest.param(
            "load1=0.000;50.000;100.000;0; load5=0.060;50.000;100.000;0;",
            [
                PerfDatum("load1", 0.0, "", "50.000", "100.000", "0"),
                PerfDatum("load5", 0.06, "", "50.000", "100.000", "0"),
            ],
            [],
            id="check_load style",
        ),
        pytest.param(
            "'a b'=1ms 'it''s'=2KB ''''=3MiB",
            [
                PerfDatum("a b", 0.001, "ms"),
                PerfDatum("it's", 2000.0, "KB"),
                PerfDatum("'", 3 * 1024.0**2, "MiB"),
            ],
            [],
            id="quoted labels and escaped quotes",
        ),
        pytest.param(
            "t=5us pct=99.5% c1=123c big=1.5TB plain=-2.5e3",
            [
                PerfDatum("t", 5e-6, "us"),
                PerfDatum("pct", 99.5, "%"),
                PerfDatum("c1", 123.0, "c"),
                PerfDatum("big", 1.5e12, "TB"),
                PerfDatum("plain", -2500.0, ""),
            ],
            [],
            id="every UOM",
        ),
        pytest.param("x=U;1;2 =3 y= z", [], ["'x': value 'U'", "'=3'", "'y': value ''", "'z'"], id="garbage"),
        pytest.param("", [], [], id="empty"),
    ],
)
def test_parse_perfdata(text, items, errors):
    assert parse_perfdata(text) == (items, errors)


def test_parse_perfdata_is_bounded():
    items, errors = parse_perfdata(" ".join(f"m{i}=1" for i in range(500)))
    assert len(items) == 100
    assert errors == ["more than 100 items; the rest were ignored"]


def test_parse_output_multiline_perfdata():
    out = parse_output("A | a=1\nB\nC | b=2s\nc=3%\n")
    assert out.summary == "A"
    assert out.long_output == "B\nC"
    assert [p.label for p in out.perf] == ["a", "b", "c"]


# --- evaluate ----------------------------------------------------------------------------


def run(name="p", code: int | None = 0, stdout="", stderr="", failure=None, error=None) -> PluginRun:
    return PluginRun(name, ("/x",), code, stdout, stderr, 0.25, failure, error)


DUR = Metric("app_nagios_plugin_duration_seconds", 0.25, Unit.SECONDS, {"plugin": "p"})


@pytest.mark.parametrize(
    ("plugin_run", "expected"),
    [
        pytest.param(
            run(code=0, stdout="FOO OK - fine|t=2ms;1;5\n"),
            [
                DUR,
                Result(
                    Severity.OK,
                    "OK",
                    "FOO OK - fine",
                    "p",
                    "Thresholds: t: warn 1 (alert outside 0..1), crit 5 (alert outside 0..5)",
                ),
                Metric("app_nagios_perf_seconds", 0.002, Unit.SECONDS, {"plugin": "p", "label": "t"}),
            ],
            id="ok with perfdata",
        ),
        pytest.param(
            run(code=1, stdout="FOO WARNING - meh\n"),
            [DUR, Result(Severity.WARN, "PLUGIN_WARNING", "FOO WARNING - meh", "p")],
            id="warning",
        ),
        pytest.param(
            run(code=2, stdout="FOO CRITICAL\nmore detail\n"),
            [DUR, Result(Severity.CRIT, "PLUGIN_CRITICAL", "FOO CRITICAL", "p", "more detail")],
            id="critical with long output",
        ),
        pytest.param(
            run(code=3, stdout="", stderr="usage: foo\n"),
            [DUR, Result(Severity.UNKNOWN, "PLUGIN_UNKNOWN", "(no output on stdout) usage: foo", "p")],
            id="unknown with stderr only",
        ),
        pytest.param(
            run(code=127, stdout="x\n"),
            [
                DUR,
                Result(
                    Severity.UNKNOWN, "PLUGIN_BAD_EXIT", "Exit code 127 is not a Nagios state (0-3): x", "p"
                ),
            ],
            id="exit code outside 0-3",
        ),
        pytest.param(
            run(code=-9, stdout=""),
            [
                DUR,
                Result(
                    Severity.UNKNOWN,
                    "PLUGIN_BAD_EXIT",
                    "Exit code -9 is not a Nagios state (0-3): (no output)",
                    "p",
                ),
            ],
            id="killed by a signal",
        ),
        pytest.param(
            run(code=None, failure="not_found", error="cannot execute /x: No such file or directory"),
            [
                Result(
                    Severity.UNKNOWN, "PLUGIN_NOT_FOUND", "cannot execute /x: No such file or directory", "p"
                )
            ],
            id="not found",
        ),
        pytest.param(
            run(code=None, failure="timeout", error="no answer within 1 s"),
            [Result(Severity.UNKNOWN, "PLUGIN_TIMEOUT", "Plugin timed out: no answer within 1 s", "p"), DUR],
            id="timeout",
        ),
        pytest.param(
            run(code=None, failure="budget", error="spent"),
            [Result(Severity.UNKNOWN, "PLUGIN_NOT_RUN", "Not run: the check's time budget was spent", "p")],
            id="budget spent",
        ),
        pytest.param(
            run(code=0, stdout="OK | w=5W;;; n=3\n"),
            [
                DUR,
                Result(Severity.OK, "OK", "OK", "p", "Unknown units reported as plain values: W"),
                Metric("app_nagios_perf_value_count", 5, Unit.COUNT, {"plugin": "p", "label": "w"}),
                Metric("app_nagios_perf_value_count", 3, Unit.COUNT, {"plugin": "p", "label": "n"}),
            ],
            id="unknown unit",
        ),
    ],
)
def test_evaluate(plugin_run, expected):
    out = list(evaluate_nagios(NagiosParams(), NagiosSection((plugin_run,)), {}))
    assert out == expected


def test_params_reject_bad_config():
    with pytest.raises(ValidationError):
        NagiosParams(plugins=({"name": "x", "command": []},))
    with pytest.raises(ValidationError):
        NagiosParams(plugins=({"name": "x", "command": ["/bin/true"], "shell": True},))
    with pytest.raises(ValidationError):
        NagiosParams(plugins=({"name": "x", "command": ["/bin/true"], "timeout_s": 0},))
    with pytest.raises(ValidationError):
        NagiosParams(plugins=({"name": "x", "command": ["/bin/true", "a\0b"]},))
    with pytest.raises(ValidationError):
        NagiosParams(plugins=({"name": "x", "command": [""]},))


def test_skip_when_nothing_configured():
    with pytest.raises(SkipCheck, match="no Nagios plugins"):
        collect_nagios(Probe(), NagiosParams())


# --- real Debian monitoring-plugins ------------------------------------------------------


@needs_plugins
def test_check_disk_root():
    out = run_one(str(PLUGINS / "check_disk"), "-w", "10%", "-c", "5%", "-p", "/", name="disk")
    [result] = results(out)
    usage = shutil.disk_usage("/")
    free_percent = usage.free / usage.total * 100
    # The verdict follows the real free space of this machine's root file system.
    if free_percent > 12:
        assert (result.severity, result.key) == (Severity.OK, "OK")
    else:
        assert result.key in ("PLUGIN_WARNING", "PLUGIN_CRITICAL")
    assert result.item == "disk"
    assert result.summary.startswith("DISK")
    used = perf_metrics(out)[("app_nagios_perf_bytes", "/")]
    assert 0 < used <= usage.total
    assert "/: warn" in (result.details or "")


@needs_plugins
def test_check_load_ok_and_critical():
    ok = run_one(str(PLUGINS / "check_load"), "-w", "50,50,50", "-c", "100,100,100", name="load")
    assert [(r.severity, r.key, r.summary[:7]) for r in results(ok)] == [(Severity.OK, "OK", "LOAD OK")]
    assert set(perf_metrics(ok)) == {("app_nagios_perf_value_count", f"load{n}") for n in (1, 5, 15)}
    # Load is never below zero and check_load alerts at >= the level, so 0 is always critical.
    crit = run_one(str(PLUGINS / "check_load"), "-w", "0,0,0", "-c", "0,0,0", name="load")
    assert [(r.severity, r.key) for r in results(crit)] == [(Severity.CRIT, "PLUGIN_CRITICAL")]


@needs_plugins
def test_check_procs_counts_processes():
    out = run_one(str(PLUGINS / "check_procs"), name="procs")
    assert [r.key for r in results(out)] == ["OK"]
    assert perf_metrics(out)[("app_nagios_perf_value_count", "procs")] >= 1


@needs_plugins
def test_check_tcp_open_and_closed_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        out = run_one(str(PLUGINS / "check_tcp"), "-H", "127.0.0.1", "-p", str(port), "-t", "5", name="tcp")
        [result] = results(out)
        assert (result.severity, result.key) == (Severity.OK, "OK")
        assert perf_metrics(out)[("app_nagios_perf_seconds", "time")] < 5
    # The listener is closed now: nothing accepts on that port any more.
    out = run_one(str(PLUGINS / "check_tcp"), "-H", "127.0.0.1", "-p", str(port), "-t", "5", name="tcp")
    [result] = results(out)
    assert (result.severity, result.key) == (Severity.CRIT, "PLUGIN_CRITICAL")
    assert "refused" in result.summary


@needs_plugins
@pytest.mark.parametrize(
    ("code", "severity", "key"),
    [
        pytest.param("0", Severity.OK, "OK", id="dummy 0"),
        pytest.param("1", Severity.WARN, "PLUGIN_WARNING", id="dummy 1"),
        pytest.param("2", Severity.CRIT, "PLUGIN_CRITICAL", id="dummy 2"),
        pytest.param("3", Severity.UNKNOWN, "PLUGIN_UNKNOWN", id="dummy 3"),
    ],
)
def test_check_dummy_exit_codes(code, severity, key):
    out = run_one(str(PLUGINS / "check_dummy"), code, "text from dummy", name="dummy")
    [result] = results(out)
    assert (result.severity, result.key, result.item) == (severity, key, "dummy")
    assert result.summary.endswith("text from dummy")


# --- script fixtures ------------------------------------------------------------------------


def test_multiline_perfdata_script():
    out = run_one(str(SCRIPTS / "multiline.sh"), name="multi")
    [result] = results(out)
    assert (result.severity, result.key, result.summary) == (
        Severity.WARN,
        "PLUGIN_WARNING",
        "DISK OK - free space: / 3326 MB (56%);",
    )
    assert perf_metrics(out) == {
        ("app_nagios_perf_bytes", "/"): 2643e6,
        ("app_nagios_perf_bytes", "/boot"): 68e6,
        ("app_nagios_perf_bytes", "/home"): 69357e6,
        ("app_nagios_perf_percent", "var 'log'"): 12.5,
        ("app_nagios_perf_seconds", "rta"): 0.25,
        ("app_nagios_perf_count", "packets"): 42,
        ("app_nagios_perf_value_count", "reqs"): 17,
    }
    assert result.details is not None
    assert result.details.startswith("/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n")
    assert "rta: warn ~:500 (alert above 500), crit @1000:2000 (alert within 1000..2000)" in result.details


def test_garbage_script_is_reported_not_raised():
    out = run_one(str(SCRIPTS / "garbage.sh"), name="junk")
    [result] = results(out)
    assert (result.severity, result.key) == (Severity.OK, "OK")
    assert result.summary.startswith("garbage")
    assert "Unparsable perfdata" in (result.details or "")
    assert perf_metrics(out) == {("app_nagios_perf_value_count", "y"): 1.0}


def test_overlong_output_is_cut():
    out = run_one(str(SCRIPTS / "longout.sh"), name="long")
    [result] = results(out)
    assert result.key == "PLUGIN_CRITICAL"
    assert len(result.summary) <= 513
    # probe.run keeps 1 MiB, so the " | big=1" after 2 MiB never arrives: no metric.
    assert perf_metrics(out) == {}


def test_timeout_kills_plugin_and_the_next_one_still_runs():
    params = NagiosParams(
        plugins=(
            PluginSpec(name="hang", command=(str(SCRIPTS / "hang.sh"),), timeout_s=0.5),
            PluginSpec(name="after", command=("/bin/echo", "OK - after|x=1"), timeout_s=5),
        )
    )
    out = list(evaluate_nagios(params, collect_nagios(Probe(), params), {}))
    assert [(r.item, r.severity, r.key) for r in results(out)] == [
        ("hang", Severity.UNKNOWN, "PLUGIN_TIMEOUT"),
        ("after", Severity.OK, "OK"),
    ]


def test_budget_spent_stops_further_plugins():
    params = NagiosParams(
        plugins=(
            PluginSpec(name="hang", command=(str(SCRIPTS / "hang.sh"),), timeout_s=5),
            PluginSpec(name="never", command=("/bin/echo", "OK"), timeout_s=5),
        ),
        budget_s=0.4,
    )
    out = list(evaluate_nagios(params, collect_nagios(Probe(), params), {}))
    assert [(r.item, r.key) for r in results(out)] == [
        ("hang", "PLUGIN_TIMEOUT"),
        ("never", "PLUGIN_NOT_RUN"),
    ]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("/nonexistent/check_nothing", id="missing"),
        pytest.param(str(SCRIPTS / "noexec.sh"), id="not executable"),
        pytest.param(str(SCRIPTS), id="a directory"),
    ],
)
def test_plugin_not_found(command):
    [result] = results(run_one(command, name="nf"))
    assert (result.severity, result.key, result.item) == (Severity.UNKNOWN, "PLUGIN_NOT_FOUND", "nf")
    assert result.summary.startswith("cannot execute")


def test_env_is_passed():
    out = run_one("/bin/sh", "-c", 'echo "OK $GREETING|v=1"', name="env")
    assert results(out)[0].summary == "OK"
    params = NagiosParams(
        plugins=(
            PluginSpec(name="env", command=("/bin/sh", "-c", 'echo "OK $GREETING"'), env={"GREETING": "hi"}),
        )
    )
    [result] = results(list(evaluate_nagios(params, collect_nagios(Probe(), params), {})))
    assert result.summary == "OK hi"
