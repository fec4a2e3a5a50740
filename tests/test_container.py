"""The container files, checked as far as a machine without a container engine allows.

No Docker or Podman here, so nothing is built or run: the compose file is parsed and its
services, ports, volumes and secrets are checked against each other; the Containerfile's
instructions are checked against the repository (every COPY source exists, every
package the distribution declares is copied, the entry point is one of its console
scripts, the ports it exposes are the ones its config listens on); the container's
collector config is loaded by the collector's own loader; Prometheus's config by promtool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.cli.config import load_text

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "deploy" / "container"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (HERE / "Containerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((HERE / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _container_config(tmp_path: Path):
    """The container's collector.yaml, its store secret pointed at a real file here."""
    secret = tmp_path / "store-url"
    secret.write_text("postgresql+psycopg://diag:pw@postgres/diag\n")
    text = (HERE / "collector.yaml").read_text()
    assert "/run/secrets/store-url" in text
    return load_text(text.replace("/run/secrets/store-url", str(secret)), "collector.yaml")


def test_compose_has_the_three_services_wired_together() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"collector", "postgres", "prometheus"}
    collector = services["collector"]
    context = (HERE / collector["build"]["context"]).resolve()
    assert context == ROOT and (context / collector["build"]["dockerfile"]).is_file()
    assert collector["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    # Every secret and named volume a service uses is declared; bind mounts exist.
    for name, service in services.items():
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], (name, secret)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (HERE / source).is_file(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/pg-password"


def test_only_the_agents_port_is_published_beyond_loopback(tmp_path: Path) -> None:
    config = _container_config(tmp_path)
    grpc_port = int(config.grpc.listen.rsplit(":", 1)[1])
    http_port = int(config.http.listen.rsplit(":", 1)[1])
    published = {}
    for mapping in _compose()["services"]["collector"]["ports"]:
        *host, container = mapping.split(":")
        published[int(container)] = host
    assert set(published) == {grpc_port, http_port}
    assert published[http_port][0] == "127.0.0.1"  # the API stays on the host's loopback
    for mapping in _compose()["services"]["prometheus"]["ports"]:
        assert mapping.startswith("127.0.0.1:")


def test_the_container_config_loads_and_hands_agents_a_real_address(tmp_path: Path) -> None:
    config = _container_config(tmp_path)
    assert config.store_url.startswith("postgresql+psycopg://")
    endpoint = config.grpc.agent_endpoint()
    assert endpoint.error is None and endpoint.address == config.grpc.public_address


def test_the_containerfile_copies_what_the_distribution_needs(tmp_path: Path) -> None:
    steps = _instructions()
    copied: dict[str, str] = {}
    for word, rest in steps:
        if word == "COPY":
            *sources, destination = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                copied[source] = destination
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= set(copied), f"packages not copied: {packages - set(copied)}"
    assert {"pyproject.toml", "README.md", "LICENSE"} <= set(copied)
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    extra = re.search(r"\[(\w+)\]'", runs)
    assert extra is not None and extra.group(1) in PYPROJECT["project"]["optional-dependencies"]
    # The entry point is a console script, and its config is the file copied to that path.
    entry = next(rest for word, rest in steps if word == "ENTRYPOINT")
    command = next(rest for word, rest in steps if word == "CMD")
    assert json.loads(entry)[0] in PYPROJECT["project"]["scripts"]
    args = json.loads(command)
    config_path = args[args.index("--config") + 1]
    assert copied["deploy/container/collector.yaml"] == config_path
    config = _container_config(tmp_path)
    exposed = {int(p) for word, rest in steps if word == "EXPOSE" for p in rest.split()}
    assert exposed == {int(config.grpc.listen.rsplit(":", 1)[1]), int(config.http.listen.rsplit(":", 1)[1])}
    user = next(rest for word, rest in steps if word == "USER")
    assert user != "root" and f"useradd --system --home-dir {config.state_dir}" in runs


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed"
)
def test_prometheus_scrapes_the_collector(tmp_path: Path) -> None:
    done = subprocess.run(
        ["promtool", "check", "config", str(HERE / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    scrape = yaml.safe_load((HERE / "prometheus.yml").read_text())["scrape_configs"][0]
    target = scrape["static_configs"][0]["targets"][0]
    config = _container_config(tmp_path)
    assert (
        target == f"collector:{config.http.listen.rsplit(':', 1)[1]}" and scrape["metrics_path"] == "/metrics"
    )
