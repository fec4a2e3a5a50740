from __future__ import annotations

import re
import socket

import pytest

from agent.config import (
    DEFAULT_STATE_DIR,
    ConfigError,
    default_config,
    load_config,
    load_text,
)
from checks.application.version import ProductSpec
from tests.agent import fakes


def errors_of(text: str, source: str = "agent.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, source, registry=fakes.ALL)
    return str(info.value).splitlines()


def test_empty_file_gives_defaults():
    loaded = load_text("", "agent.yaml", registry=fakes.ALL)
    agent = loaded.config.agent
    assert agent.id == socket.gethostname()
    assert agent.state_dir == DEFAULT_STATE_DIR
    assert (agent.interval_s, agent.effective_jitter_s, agent.max_workers) == (60.0, 6.0, 4)
    assert loaded.config.spool.max_bytes == 256 * 1024 * 1024
    assert loaded.config.spool_path == DEFAULT_STATE_DIR / "spool.db"
    # default_enabled=False (host.test_warn) stays off; the rest run
    assert [p.name for p in loaded.enabled_plans] == [n for n in fakes.ALL if n != "host.test_warn"]


def test_sections_with_everything_commented_out_are_defaults():
    loaded = load_text("agent:\ncollector:\nchecks:\n", "agent.yaml", registry=fakes.ALL)
    assert loaded.config.collector.address is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "agent: {id: a\n  interval_s: 5\n",
            "agent.yaml: YAML syntax error at line 2, column 13:",
            id="unclosed flow mapping",
        ),
        pytest.param("agent:\n  id: a\n   interval_s: 1\n", "at line 3, column 14", id="bad indentation"),
        pytest.param("agent: {id: a}\nagent: {id: b}\n", "found duplicate key 'agent'", id="duplicate key"),
        pytest.param("- a\n- b\n", "expected a mapping of sections at the top level", id="top level list"),
    ],
)
def test_malformed_yaml_names_file_line_and_column(text, expected):
    message = "\n".join(errors_of(text))
    assert message.startswith("agent.yaml: ")
    assert expected in message


@pytest.mark.parametrize(
    ("text", "path", "hint"),
    [
        pytest.param("agnet: {}\n", "agnet", "did you mean 'agent'?", id="top level"),
        pytest.param(
            "agent: {intervall_s: 5}\n", "agent.intervall_s", "did you mean 'interval_s'?", id="agent"
        ),
        pytest.param(
            "collector: {adress: 'x:1'}\n", "collector.adress", "did you mean 'address'?", id="collector"
        ),
        pytest.param(
            "collector: {tls: {ca: /x}}\n", "collector.tls.ca", "valid keys here: ca_file", id="tls"
        ),
        pytest.param("spool: {max_size: 5}\n", "spool.max_size", "valid keys here:", id="spool"),
        pytest.param(
            "checks: {host.test_metrics: {enable: true}}\n",
            "checks.host.test_metrics.enable",
            "did you mean 'enabled'?",
            id="check block",
        ),
        pytest.param(
            "checks: {host.test_metrics: {params: {valu: 2}}}\n",
            "checks.host.test_metrics.params.valu",
            "did you mean 'value'?",
            id="check params",
        ),
        pytest.param(
            "inventory: {product: []}\n", "inventory.product", "did you mean 'products'?", id="inventory"
        ),
        pytest.param(
            "inventory: {products: [{name: x, file: /v, regexp: 'x'}]}\n",
            "inventory.products.0.regexp",
            "did you mean 'regex'?",
            id="product",
        ),
    ],
)
def test_unknown_key_at_every_level(text, path, hint):
    (line,) = errors_of(text)
    assert line.startswith(f"agent.yaml: {path}: unknown key")
    assert hint in line


@pytest.mark.parametrize(
    ("text", "path", "value", "expected"),
    [
        pytest.param(
            "agent: {interval_s: soon}\n", "agent.interval_s", "'soon'", "valid number", id="not a number"
        ),
        pytest.param("agent: {interval_s: -1}\n", "agent.interval_s", "-1", "greater than 0", id="negative"),
        pytest.param(
            "agent: {max_workers: 0}\n", "agent.max_workers", "0", "greater than or equal to 1", id="zero"
        ),
        pytest.param("agent: {labels: [a]}\n", "agent.labels", "['a']", "valid dictionary", id="labels list"),
        pytest.param(
            "collector: {address: nohost}\n", "collector.address", "'nohost'", "host:port", id="address"
        ),
        pytest.param(
            "collector: {tls: {cert_file: /c}}\n",
            "collector.tls",
            None,
            "cert_file and key_file",
            id="tls pair",
        ),
        pytest.param(
            "checks: {host.test_metrics: {params: {value: lots}}}\n",
            "checks.host.test_metrics.params.value",
            "'lots'",
            "valid number",
            id="params type",
        ),
        pytest.param(
            "checks: {host.test_metrics: {timeout_s: 0}}\n",
            "checks.host.test_metrics.timeout_s",
            "0",
            "greater than 0",
            id="check timeout",
        ),
        pytest.param(
            "inventory: {products: [{name: x, command: [v], file: /v}]}\n",
            "inventory.products.0",
            None,
            "exactly one of 'command'",
            id="product with two sources",
        ),
        pytest.param(
            "inventory: {products: [{name: x, file: /v, regex: '(['}]}\n",
            "inventory.products.0.regex",
            "'(['",
            "invalid regular expression",
            id="bad regex",
        ),
        pytest.param(
            "inventory: {products: [{name: x, file: /v, regex: '(a)(b)'}]}\n",
            "inventory.products.0.regex",
            "'(a)(b)'",
            "exactly one group",
            id="regex with two groups",
        ),
        pytest.param(
            "inventory: {products: [{name: x, file: VERSION}]}\n",
            "inventory.products.0.file",
            "'VERSION'",
            "absolute path",
            id="relative product file",
        ),
        pytest.param(
            "inventory: {products: [{name: x, file: /a}, {name: x, command: [v]}]}\n",
            "inventory.products",
            None,
            "product name 'x' is listed twice",
            id="duplicate product",
        ),
    ],
)
def test_wrong_values_name_path_value_and_expectation(text, path, value, expected):
    (line,) = errors_of(text)
    assert line.startswith(f"agent.yaml: {path}: ")
    assert expected in line
    if value is not None:
        assert line.endswith(f"(got {value})")


def test_unknown_check_suggests_close_names():
    (line,) = errors_of("checks:\n  host.test_metric: {}\n")
    assert line == (
        "agent.yaml: checks.host.test_metric: unknown check 'host.test_metric';"
        " did you mean host.test_metrics, host.test_warn?"
    )


def test_unknown_check_without_close_match_lists_the_layer():
    (line,) = errors_of("checks:\n  storage.zzz: {}\n")
    assert "known checks: storage.test_raise" in line


def test_all_problems_reported_in_one_pass():
    lines = errors_of(
        "agent: {interval_s: x}\nchecks:\n  host.nope: {}\n  host.test_metrics: {params: {value: y}}\n"
    )
    assert [line.split(": ")[1] for line in lines] == [
        "agent.interval_s",
        "checks.host.nope",
        "checks.host.test_metrics.params.value",
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("collector: {token: [hunter2-secret]}\n", id="wrong type"),
        pytest.param("collector: {token: {hunter2-secret: 1}}\n", id="mapping"),
        pytest.param("collector:\n  token: hunter2-secret: x\n", id="syntax error on the token line"),
        pytest.param(
            "checks: {host.test_metrics: {params: {password: hunter2-secret}}}\n", id="secret-ish param"
        ),
    ],
)
def test_secret_values_never_echoed(text):
    message = "\n".join(errors_of(text))
    assert "hunter2" not in message
    assert message  # and there is an error


def test_token_is_secret_and_scrub_list_has_it():
    loaded = load_text("collector: {token: hunter2-secret, address: '127.0.0.1:50051'}\n", registry=fakes.ALL)
    assert "hunter2" not in repr(loaded.config)
    assert loaded.secrets() == ("hunter2-secret",)


def test_mentioning_a_check_enables_it_and_enabled_false_disables():
    loaded = load_text(
        "checks:\n  host.test_warn:\n  host.test_metrics: {enabled: false}\n", registry=fakes.ALL
    )
    enabled = {p.name for p in loaded.enabled_plans}
    assert "host.test_warn" in enabled
    assert "host.test_metrics" not in enabled


def test_intervals_scale_with_the_base_and_per_check_overrides_win():
    loaded = load_text(
        "agent: {interval_s: 30}\nchecks:\n  storage.test_raise: {interval_s: 7, timeout_s: 3}\n",
        registry=fakes.ALL,
    )
    plans = {p.name: p for p in loaded.plans}
    assert plans["host.test_metrics"].interval_s == 30.0  # declared 60 at a 60 s base
    assert (plans["storage.test_raise"].interval_s, plans["storage.test_raise"].timeout_s) == (7.0, 3.0)
    assert plans["network.test_hang"].timeout_s == fakes.HANG.timeout_s


def test_params_are_validated_into_the_checks_model():
    loaded = load_text("checks: {host.test_metrics: {params: {value: 3}}}\n", registry=fakes.ALL)
    plan = next(p for p in loaded.plans if p.name == "host.test_metrics")
    assert plan.params == fakes.CountParams(value=3.0)


def test_overrides_replace_file_values(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("agent: {interval_s: 60, state_dir: /nonexistent}\n")
    loaded = load_config(path, {"agent": {"interval_s": 5, "state_dir": str(tmp_path)}}, fakes.ALL)
    assert loaded.config.agent.interval_s == 5
    assert loaded.config.agent.state_dir == tmp_path
    assert loaded.config.agent.effective_jitter_s == 0.5


def test_jitter_never_exceeds_interval():
    loaded = load_text("agent: {interval_s: 2, jitter_s: 10}\n", registry=fakes.ALL)
    assert loaded.config.agent.effective_jitter_s == 2


def test_unreadable_file_names_it(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, registry=fakes.ALL)
    assert str(info.value) == f"{missing}: cannot read the config file: No such file or directory"


def test_inventory_products_are_typed():
    loaded = load_text(
        "inventory:\n  products:\n"
        "    - {name: app, command: [/bin/app, --version]}\n"
        "    - {name: db, file: /etc/db}\n",
        registry=fakes.ALL,
    )
    app, db = loaded.config.inventory.products
    assert app.command == ("/bin/app", "--version") and app.file is None
    assert db.file == "/etc/db" and db.command is None
    # One model for the inventory and the application.version check: what the
    # inventory collector reads (timeout_s, the default regex) is always there.
    assert isinstance(app, ProductSpec) and app.timeout_s == 5.0
    match = re.compile(db.regex).search("release 7.4.2-lts")
    assert match is not None and match.group(1) == "7.4.2"


def test_default_config_uses_the_real_registry():
    loaded = default_config()
    assert "host.load" in {p.name for p in loaded.enabled_plans}
