from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.application.version import (
    ProductSpec,
    ProductVersion,
    VersionParams,
    VersionSection,
    VersionUnknown,
    collect_version,
    discover_version,
    evaluate_version,
)
from checks.probe import Probe
from tests.conftest import fixture_probe

SCRIPTS = Path(__file__).parents[2] / "fixtures" / "app-nagios"


def spec(**kw: object) -> ProductSpec:
    return ProductSpec.model_validate({"name": "app", "regex": r"release=(\S+)", **kw})


# --- discover_version ------------------------------------------------------------------


def test_version_from_file():
    assert discover_version(fixture_probe("app-versions"), spec(file="/opt/app/VERSION")) == "7.4.2-lts"


def test_version_from_real_command_stdout():
    product = spec(command=[sys.executable, "--version"], regex=r"Python (\d+\.\d+\.\d+)")
    expected = ".".join(str(n) for n in sys.version_info[:3])
    assert discover_version(Probe(), product) == expected


def test_version_from_command_stderr():
    product = spec(
        command=["/bin/sh", "-c", "echo 'openjdk version \"17.0.9\"' >&2"], regex=r'version "([^"]+)"'
    )
    assert discover_version(Probe(), product) == "17.0.9"


@pytest.mark.parametrize(
    ("product", "reason"),
    [
        pytest.param(spec(file="/opt/app/MISSING"), "/opt/app/MISSING does not exist", id="missing file"),
        pytest.param(spec(file="/opt/app/dir.d"), "/opt/app/dir.d is a directory", id="directory"),
        pytest.param(
            spec(file="/opt/app/README"),
            "no match for the version regex in /opt/app/README",
            id="no match in file",
        ),
        pytest.param(
            spec(command=["/nonexistent/app", "--version"]),
            "cannot run /nonexistent/app: No such file or directory",
            id="missing command",
        ),
        pytest.param(
            spec(command=["/bin/sh", "-c", "echo oops; exit 4"]),
            "no match for the version regex in the output of /bin/sh (exit code 4)",
            id="command fails",
        ),
        pytest.param(
            spec(command=[str(SCRIPTS / "hang.sh")], timeout_s=0.3),
            f"{SCRIPTS / 'hang.sh'} did not finish within 0.3 s",
            id="command hangs",
        ),
    ],
)
def test_version_unknown_reasons(product, reason):
    with pytest.raises(VersionUnknown) as caught:
        discover_version(fixture_probe("app-versions"), product)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"regex": "(a)(b)", "file": "/x"}, id="two groups"),
        pytest.param({"regex": "abc", "file": "/x"}, id="no group"),
        pytest.param({"regex": "(unclosed", "file": "/x"}, id="malformed regex"),
        pytest.param({"regex": "(a)"}, id="neither command nor file"),
        pytest.param({"regex": "(a)", "file": "/x", "command": ["a"]}, id="both command and file"),
        pytest.param({"regex": "(a)", "file": "relative/path"}, id="relative file"),
        pytest.param({"regex": "(a)", "command": []}, id="empty command"),
    ],
)
def test_product_spec_rejects_bad_config(bad):
    with pytest.raises(ValidationError):
        ProductSpec.model_validate({"name": "x", **bad})


# --- collect / evaluate -----------------------------------------------------------------


def test_collect_reports_each_product():
    params = VersionParams(
        products=(spec(file="/opt/app/VERSION"), spec(name="gone", file="/opt/gone/VERSION"))
    )
    assert collect_version(fixture_probe("app-versions"), params) == VersionSection(
        (ProductVersion("app", "7.4.2-lts"), ProductVersion("gone", None, "/opt/gone/VERSION does not exist"))
    )


def test_collect_skips_without_products():
    with pytest.raises(SkipCheck, match="no products"):
        collect_version(Probe(), VersionParams())


PARAMS = VersionParams(products=(spec(file="/v"),))


def info(version: str) -> Metric:
    return Metric("app_version_info", 1, Unit.INFO, {"product": "app", "version": version})


@pytest.mark.parametrize(
    ("stored", "found", "expected", "stored_after"),
    [
        pytest.param(
            {},
            ProductVersion("app", "1.0"),
            [Result(Severity.OK, "OK", "Version 1.0", "app"), info("1.0")],
            {"app": "1.0"},
            id="first run",
        ),
        pytest.param(
            {"versions": {"app": "1.0"}},
            ProductVersion("app", "1.0"),
            [Result(Severity.OK, "OK", "Version 1.0", "app"), info("1.0")],
            {"app": "1.0"},
            id="unchanged",
        ),
        pytest.param(
            {"versions": {"app": "1.0", "removed": "3"}},
            ProductVersion("app", "1.1"),
            [
                Result(
                    Severity.WARN, "VERSION_CHANGED", "Version changed: 1.0 → 1.1", "app", "old=1.0 new=1.1"
                ),
                info("1.1"),
            ],
            {"app": "1.1"},
            id="upgrade, unconfigured product forgotten",
        ),
        pytest.param(
            {"versions": {"app": "1.0"}},
            ProductVersion("app", None, "/v does not exist"),
            [
                Result(
                    Severity.UNKNOWN,
                    "VERSION_UNKNOWN",
                    "Version not found: /v does not exist (last known: 1.0)",
                    "app",
                )
            ],
            {"app": "1.0"},
            id="unknown keeps the last known version",
        ),
    ],
)
def test_evaluate(stored, found, expected, stored_after):
    store = dict(stored)
    assert list(evaluate_version(PARAMS, VersionSection((found,)), store)) == expected
    assert store["versions"] == stored_after


def test_change_reported_once():
    store: dict[str, object] = {}
    for version in ("1.0", "2.0", "2.0"):
        out = list(evaluate_version(PARAMS, VersionSection((ProductVersion("app", version),)), store))
    assert [r.key for r in out if isinstance(r, Result)] == ["OK"]
