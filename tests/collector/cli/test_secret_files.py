"""Every secret of the collector config can come from a file or a systemd credential.

The files are real; the store behind ``store.url_file`` is really opened (SQLite and
PostgreSQL) by a real ``diag-collector migrate`` process started with
``CREDENTIALS_DIRECTORY`` as systemd sets it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.cli.config import ConfigError, load_text
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening

ROOT = Path(__file__).resolve().parents[3]
WEBHOOK_SECRET = "0123456789abcdef-very-secret"
SMTP_PASSWORD = "smtp-pw-do-not-print"


def _notify(hook: str, mail: str) -> str:
    return (
        "emergency:\n  notify:\n    customers:\n      acme:\n"
        f"        webhooks:\n          - {{name: ops, {hook}}}\n"
        "        email:\n          smtp_host: 127.0.0.1\n          from: diag@vendor.example\n"
        f"          to: [ops@acme.example]\n          username: diag\n          {mail}\n"
    )


def test_each_secret_comes_from_its_file(tmp_path: Path) -> None:
    files = {
        "url": "https://hooks.acme.example/diag?token=t0k3n",
        "secret": WEBHOOK_SECRET,
        "pw": SMTP_PASSWORD,
    }
    for name, value in files.items():
        (tmp_path / name).write_text(value + "\n")  # a trailing newline, as editors write
    (tmp_path / "store").write_text(f"sqlite:///{tmp_path / 'c.db'}\n")
    config = load_text(
        f"store: {{url_file: {tmp_path / 'store'}}}\n"
        + _notify(
            f"url_file: {tmp_path / 'url'}, secret_file: {tmp_path / 'secret'}",
            f"password_file: {tmp_path / 'pw'}",
        )
    )
    assert config.store_url == f"sqlite:///{tmp_path / 'c.db'}"
    customer = config.emergency.notify.customers["acme"]
    assert customer.webhooks[0].url == files["url"]
    assert customer.webhooks[0].secret.get_secret_value() == WEBHOOK_SECRET
    assert customer.email is not None and customer.email.password is not None
    assert customer.email.password.get_secret_value() == SMTP_PASSWORD


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "store: {url: 'sqlite:///a.db', url_file: /nonexistent}",
            "c.yaml: store.url_file: give either url or url_file, not both",
            id="both",
        ),
        pytest.param(
            "store: {url_file: /nonexistent/store-url}",
            "c.yaml: store.url_file: cannot read /nonexistent/store-url: No such file or directory",
            id="missing file",
        ),
        pytest.param(
            "store: {url_file: '${CREDENTIALS_DIRECTORY}/store-url'}",
            "needs $CREDENTIALS_DIRECTORY, which systemd sets only for a unit with LoadCredential=",
            id="no credentials directory",
        ),
        pytest.param("store: {url_file: 42}", "store.url_file: expected the path of a file", id="not a path"),
    ],
)
def test_problems_name_the_setting(text: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_text(text, "c.yaml")
    assert message in str(caught.value)


def test_an_empty_or_invalid_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError) as caught:
        load_text(f"store: {{url_file: {tmp_path / 'empty'}}}", "c.yaml")
    assert f"store.url_file: {tmp_path / 'empty'} is empty" in str(caught.value)
    (tmp_path / "bad").write_text("mysql://root:hunter2@db/diag\n")
    with pytest.raises(ConfigError) as caught:
        load_text(f"store: {{url_file: {tmp_path / 'bad'}}}", "c.yaml")
    assert "store.url" in str(caught.value) and "hunter2" not in str(caught.value)
    (tmp_path / "short").write_text("tooShort\n")
    with pytest.raises(ConfigError) as caught:
        load_text(
            _notify(f"url: 'https://h.example/x', secret_file: {tmp_path / 'short'}", "password: x"), "c.yaml"
        )
    assert "webhooks.0.secret" in str(caught.value) and "tooShort" not in str(caught.value)


def test_cert_and_windows_files_stay_paths() -> None:
    config = load_text("grpc: {tls: {cert_file: /etc/c.pem, key_file: /etc/k.pem}}")
    assert config.grpc.tls is not None and str(config.grpc.tls.key_file) == "/etc/k.pem"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'c.db'}"
        return
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        yield url


def test_a_systemd_credential_opens_the_store(store_url: str, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "store-url").write_text(store_url + "\n")
    config = tmp_path / "collector.yaml"
    config.write_text("store:\n  url_file: ${CREDENTIALS_DIRECTORY}/store-url\n")
    done = subprocess.run(
        [sys.executable, "-m", "collector.cli", "migrate", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CREDENTIALS_DIRECTORY": str(credentials)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "is at the latest schema" in done.stdout
    engine = sa.create_engine(store_url)
    try:
        assert "alembic_version" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
