"""The shared config machinery, tested without the agent or the collector models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import agent.config
import collector.cli.config
from diagconfig import (
    ConfigError,
    ConfigIssue,
    YamlLimits,
    issues_from,
    load_yaml_file,
    model_at,
    parse_yaml,
    read_config_file,
    show_value,
)

SECRET = re.compile(r"(token|password)", re.IGNORECASE)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tls(_M):
    cert_file: str
    token: str = ""


class Endpoint(_M):
    address: str = "127.0.0.1:1"
    tls: Tls | None = None
    retries: int = Field(default=3, ge=0)

    @field_validator("address")
    @classmethod
    def _has_port(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError("Expected host:port")
        return value


class Root(_M):
    endpoint: Endpoint = Field(default_factory=Endpoint)
    by_name: dict[str, Endpoint] = Field(default_factory=dict)
    listed: list[Endpoint] = Field(default_factory=list)
    password: str = ""


def _issues(data: dict[str, Any], **kwargs: Any) -> list[ConfigIssue]:
    with pytest.raises(ValidationError) as info:
        Root.model_validate(data)
    return issues_from(info.value, Root, secret=SECRET, **kwargs)


# --- ConfigIssue / ConfigError ---------------------------------------------------------


def test_error_renders_one_line_per_issue_with_and_without_path_and_value():
    err = ConfigError(
        "c.yaml",
        [
            ConfigIssue("a.b", "expected: x", "'y'"),
            ConfigIssue("", "cannot read"),
            ConfigIssue("c", "missing"),
        ],
    )
    assert str(err).splitlines() == [
        "c.yaml: a.b: expected: x (got 'y')",
        "c.yaml: cannot read",
        "c.yaml: c: missing",
    ]
    assert err.source == "c.yaml"
    assert err.issues == (
        ConfigIssue("a.b", "expected: x", "'y'"),
        ConfigIssue("", "cannot read"),
        ConfigIssue("c", "missing"),
    )
    assert ConfigError.exit_code == 2


def test_issues_may_be_any_sequence():
    assert ConfigError("s", (ConfigIssue("p", "m"),)).issues == (ConfigIssue("p", "m"),)


def test_agent_and_collector_share_the_same_classes():
    assert agent.config.ConfigError is collector.cli.config.ConfigError is ConfigError
    assert agent.config.ConfigIssue is collector.cli.config.ConfigIssue is ConfigIssue


# --- parse_yaml -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "a: [1, 2\nb: 3\n",
            "s.yaml: YAML syntax error at line 2, column 2: did not find expected ',' or ']'",
            id="flow",
        ),
        pytest.param("a: 1\n a: 2\nb: x: y\n", "s.yaml: YAML syntax error at line 2, column 3:", id="indent"),
        pytest.param(
            "a: 1\nb: {c: 1, c: 2}\n",
            "s.yaml: YAML syntax error at line 2, column 11: found duplicate key 'c'",
            id="dup",
        ),
    ],
)
def test_syntax_errors_name_line_and_column(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "s.yaml")
    assert str(info.value).startswith(expected)
    assert len(info.value.issues) == 1


def test_syntax_error_does_not_quote_the_line():
    with pytest.raises(ConfigError) as info:
        parse_yaml("token: hunter2: x\n", "s.yaml")
    assert "hunter2" not in str(info.value)


def test_duplicate_keys_allowed_on_request_keep_the_last():
    assert parse_yaml("a: 1\na: 2\n", "s.yaml", allow_duplicate_keys=True) == {"a": 2}


def test_valid_yaml_parses_like_safe_load():
    assert parse_yaml("a: {b: [1, x]}\nc:\n", "s.yaml") == {"a": {"b": [1, "x"]}, "c": None}
    assert parse_yaml("", "s.yaml") is None


def test_unsafe_tags_are_rejected():
    with pytest.raises(ConfigError, match=r"s.yaml: YAML syntax error at line 1, column 4: "):
        parse_yaml("a: !!python/object:os.system {}\n", "s.yaml")


# --- issues_from --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {"endpont": {}},
            ConfigIssue("endpont", "unknown key; did you mean 'endpoint'?", "{}"),
            id="typo top",
        ),
        pytest.param(
            {"endpoint": {"tls": {"cert_file": "c", "zzz": 1}}},
            ConfigIssue("endpoint.tls.zzz", "unknown key; valid keys here: cert_file, token", "1"),
            id="no close match, optional model",
        ),
        pytest.param(
            {"by_name": {"x": {"retires": 1}}},
            ConfigIssue("by_name.x.retires", "unknown key; did you mean 'retries'?", "1"),
            id="in dict",
        ),
        pytest.param(
            {"listed": [{}, {"adress": "a:1"}]},
            ConfigIssue("listed.1.adress", "unknown key; did you mean 'address'?", "'a:1'"),
            id="in list",
        ),
        pytest.param(
            {"endpoint": {"tls": {}}},
            ConfigIssue("endpoint.tls.cert_file", "required key is missing"),
            id="missing",
        ),
        pytest.param(
            {"endpoint": {"address": "nohost"}},
            ConfigIssue("endpoint.address", "expected host:port", "'nohost'"),
            id="value error",
        ),
        pytest.param(
            {"endpoint": {"retries": -1}},
            ConfigIssue("endpoint.retries", "expected: input should be greater than or equal to 0", "-1"),
            id="constraint",
        ),
    ],
)
def test_issue_paths_messages_and_values(data: dict[str, Any], expected: ConfigIssue) -> None:
    assert _issues(data) == [expected]


def test_secret_values_are_redacted_anywhere_on_the_path():
    issues = _issues({"password": 5, "endpoint": {"tls": {"cert_file": "c", "token": ["hunter2"]}}})
    assert [(i.path, i.value) for i in issues] == [
        ("endpoint.tls.token", "<redacted>"),
        ("password", "<redacted>"),
    ]


def test_unknown_key_value_can_be_left_off():
    assert _issues({"endpont": {}}, show_unknown_value=False) == [
        ConfigIssue("endpont", "unknown key; did you mean 'endpoint'?")
    ]


def test_prefix_leads_every_path():
    with pytest.raises(ValidationError) as info:
        Endpoint.model_validate({"retries": "x"})
    [issue] = issues_from(info.value, Endpoint, ("checks", "net.x", "params"), secret=SECRET)
    assert issue.path == "checks.net.x.params.retries"


def test_long_values_are_cut():
    [issue] = _issues({"endpoint": {"address": "a" * 200}})
    assert issue.value == "'" + "a" * 56 + "..."
    assert show_value("short") == "'short'"


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        pytest.param((), Root, id="root"),
        pytest.param(("endpoint", "tls"), Tls, id="optional"),
        pytest.param(("by_name", "k"), Endpoint, id="dict value"),
        pytest.param(("listed", 0, "tls"), Tls, id="list item"),
        pytest.param(("password",), None, id="scalar"),
        pytest.param(("nope",), None, id="unknown"),
    ],
)
def test_model_at(loc: tuple[str | int, ...], expected: type[BaseModel] | None) -> None:
    assert model_at(Root, loc) is expected


# --- limits on hostile documents ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limits", "expected"),
    [
        pytest.param(
            "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b, *b]\n",
            YamlLimits(max_values=15),
            "refused: aliases (*name) expand the document to more than 15 values (at line 3, column 5)",
            id="alias expansion",
        ),
        pytest.param(
            "a: [1, 2, 3, 4]\n", YamlLimits(max_values=4), "refused: the document holds more than 4 values",
            id="values without aliases",
        ),
        pytest.param(
            "a: {b: {c: {d: 1}}}\n", YamlLimits(max_depth=3), "refused: nested more than 3 levels deep",
            id="depth",
        ),
        pytest.param("a: &a [1, *a]\n", YamlLimits(), "refused: an alias repeats a value that contains it",
                     id="recursive alias"),
        pytest.param("a: 12345\n", YamlLimits(max_bytes=8), "refused: the document is larger than 8 bytes",
                     id="size"),
    ],
)  # fmt: skip
def test_documents_beyond_the_limits_are_refused(text: str, limits: YamlLimits, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "s.yaml", limits=limits)
    assert str(info.value).startswith(f"s.yaml: {expected}")


def test_anchors_and_merge_keys_within_the_limits_still_work() -> None:
    text = "base: &base {port: 1, host: h}\none: {<<: *base, tls: 2}\ntwo: *base\n"
    assert parse_yaml(text, "s.yaml", limits=YamlLimits(max_values=30)) == {
        "base": {"port": 1, "host": "h"},
        "one": {"port": 1, "host": "h", "tls": 2},
        "two": {"port": 1, "host": "h"},
    }


def test_read_config_file_is_bounded_and_names_the_problem(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 2000)
    with pytest.raises(ConfigError) as info:
        read_config_file(big, "plan file", YamlLimits(max_bytes=1000))
    assert str(info.value) == f"{big}: cannot read the plan file: the file is larger than 1,000 bytes"
    with pytest.raises(ConfigError, match="cannot read the config file: the file is larger than"):
        read_config_file("/dev/zero")  # endless: read up to the bound only
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(
        ConfigError, match=r"latin.yaml: cannot read the config file: not UTF-8 text \(byte 9\)"
    ):
        read_config_file(latin)
    assert load_yaml_file(_write(tmp_path, "a: [1]\n")) == {"a": [1]}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    return path


def test_an_error_lists_twenty_problems_and_counts_the_rest() -> None:
    err = ConfigError("c.yaml", [ConfigIssue(f"k{i}", "unknown key") for i in range(400_000)])
    lines = str(err).splitlines()
    assert len(lines) == 21 and len(err.issues) == 400_000
    assert lines[0] == "c.yaml: k0: unknown key" and lines[19] == "c.yaml: k19: unknown key"
    assert lines[20] == "c.yaml: ... and 399980 more problems"
    assert (
        str(ConfigError("c.yaml", [ConfigIssue("k", "m")] * 21)).splitlines()[-1]
        == "c.yaml: ... and 1 more problem"
    )
