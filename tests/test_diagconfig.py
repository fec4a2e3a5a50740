"""The shared config machinery, tested without the agent or the collector models."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import agent.config
import collector.cli.config
from diagconfig import ConfigError, ConfigIssue, issues_from, model_at, parse_yaml, show_value

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
            "s.yaml: YAML syntax error at line 2, column 2: expected ',' or ']'",
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
