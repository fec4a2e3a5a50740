"""``diag-collector quickstart``: a working system on this machine in one command.

Creates (or reuses) a state directory, an embedded SQLite store, an engineer API token
and one enrolled agent for this host; starts ``diag-collector serve`` and a local
``diag-agent run`` streaming to it; waits until the first results are stored; prints
where the API is and how to look at the results; runs one inspection (定期巡检) of the
local host with a built-in plan and prints the path of its report (HTML, and PDF when
WeasyPrint works); and stops both cleanly on Ctrl-C.

Secrets stay in the state directory (mode 0600 files); the token is printed once so
the engineer can export it for ``diagctl``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

CUSTOMER = "local"
DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8080
PLAN_NAME = "quickstart"
INSPECTION_DEADLINE_S = 30


@dataclass(frozen=True, slots=True)
class Credentials:
    api_token: str
    agent_id: str
    agent_token: str


def _free_port(preferred: int) -> int:
    """``preferred`` when it is free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            # As the servers will: a port held only by TIME_WAIT sockets counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1")


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _credentials(state: Path, store_url: str) -> Credentials:
    """Reuse the credentials of an earlier quickstart in ``state``, else create them."""
    path = state / "credentials.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(data["api_token"], data["agent_id"], data["agent_token"])
    from collector.store import Store

    store = Store.open(store_url)
    try:
        api_token = store.create_api_token("quickstart", "engineer")
        host = socket.gethostname() or "localhost"
        identity, agent_token = store.enroll_agent(CUSTOMER, host=host, agent_id=f"{host}-quickstart")
    finally:
        store.close()
    creds = Credentials(api_token, identity.agent_id, agent_token)
    _write_secret(path, json.dumps(_as_dict(creds)))
    return creds


def _as_dict(creds: Credentials) -> dict[str, str]:
    return {"api_token": creds.api_token, "agent_id": creds.agent_id, "agent_token": creds.agent_token}


def _agent_config(state: Path, creds: Credentials, grpc_port: int) -> Path:
    path = state / "agent.yaml"
    text = (
        "# Written by diag-collector quickstart: the local agent streaming to the local collector.\n"
        "agent:\n"
        f"  id: {json.dumps(creds.agent_id)}\n"
        f"  customer: {CUSTOMER}\n"
        f"  state_dir: {json.dumps(str(state / 'agent'))}\n"
        "  interval_s: 60\n"
        "collector:\n"
        f'  address: "127.0.0.1:{grpc_port}"\n'
        f"  token: {json.dumps(creds.agent_token)}\n"
    )
    _write_secret(path, text)
    return path


def _collector_config(state: Path) -> Path:
    """The collector's config: state and reports in ``state``, plus the built-in inspection plan."""
    plans = state / "plans"
    plans.mkdir(exist_ok=True)
    (plans / f"{PLAN_NAME}.yaml").write_text(
        "# Written by diag-collector quickstart: inspect the local host with every default check.\n"
        f"name: {PLAN_NAME}\n"
        f"customer: {CUSTOMER}\n"
        "description: Quickstart inspection of this host\n"
        "timezone: UTC\n"
        'schedule: "0 6 * * 1"\n'
        f"answer_deadline: {INSPECTION_DEADLINE_S}s\n",
        encoding="utf-8",
    )
    path = state / "collector.yaml"
    path.write_text(
        "# Written by diag-collector quickstart.\n"
        f"state_dir: {json.dumps(str(state))}\n"
        "inspections:\n"
        f"  plans_dir: {json.dumps(str(plans))}\n"
        f"  reports_dir: {json.dumps(str(state / 'reports'))}\n"
        "  poll_s: 0.5\n",
        encoding="utf-8",
    )
    return path


def _get_json(url: str, token: str, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _post_json(url: str, token: str, timeout: float = 10.0) -> Any:
    request = urllib.request.Request(
        url, data=b"", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _inspect(http: str, creds: Credentials) -> int:
    """Run the built-in plan once; print the report paths. 0 when the report exists."""
    api = f"{http}/api/v1"
    print(f"running an inspection of this host (plan {PLAN_NAME!r}) ...", flush=True)
    try:
        run = _post_json(f"{api}/inspections/plans/{PLAN_NAME}/runs", creds.api_token)
        deadline = time.monotonic() + INSPECTION_DEADLINE_S + 60
        while run["state"] in ("pending", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            run = _get_json(f"{api}/inspections/runs/{run['id']}", creds.api_token)
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        print(f"the inspection could not start: {exc}", file=sys.stderr)
        return 1
    if run["state"] != "done":
        print(
            f"inspection {run['id']} is {run['state']}: {run.get('error') or 'see the collector log'}",
            file=sys.stderr,
        )
        return 1
    print(
        f"inspection {run['id']}: score {run['overall_score']}, "
        f"{run['hosts_answered']}/{run['hosts_selected']} host(s) answered, findings "
        + (", ".join(f"{n} {sev}" for sev, n in run["counts"].items() if n) or "none")
    )
    records = _get_json(f"{api}/reports?subject={run['id']}", creds.api_token)
    html = next((r["path"] for r in records if r["format"] == "html" and r["path"]), None)
    print(f"inspection report (HTML): {html}")
    try:
        request = urllib.request.Request(
            f"{api}/reports/inspection?run={run['id']}&format=pdf",
            headers={"Authorization": f"Bearer {creds.api_token}"},
        )
        with urllib.request.urlopen(request, timeout=180) as response:
            report_id = response.headers.get("X-Report-Id")
        pdf = _get_json(f"{api}/reports/{report_id}", creds.api_token)["path"]
        print(f"inspection report (PDF):  {pdf}")
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        print(f"no PDF report ({exc}); the HTML report above is complete")
    return 0 if html else 1


def _wait_http(url: str, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the collector exited with status {proc.returncode}; see its log above")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"the collector did not answer at {url} within {deadline_s:g} s")


def _stop(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop within 20 s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


def _wait_first_results(http: str, creds: Credentials, deadline_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            hosts = _get_json(f"{http}/api/v1/hosts", creds.api_token)
        except (urllib.error.URLError, OSError, ValueError):
            hosts = []
        if isinstance(hosts, list) and any(h.get("severity_counts") for h in hosts):
            return hosts
        time.sleep(0.5)
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="diag-collector quickstart",
        description="Start a collector on embedded SQLite plus one local agent streaming to it.",
    )
    parser.add_argument("--state-dir", default=".diag-quickstart", help="default: ./.diag-quickstart")
    parser.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT)
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument(
        "--exit-after-first-results",
        action="store_true",
        help="stop both processes once the first results are stored and inspected (for scripts and tests)",
    )
    args = parser.parse_args(argv)

    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    store_url = f"sqlite:///{state / 'collector.db'}"
    grpc_port = _free_port(args.grpc_port)
    http_port = _free_port(args.http_port)
    http = f"http://127.0.0.1:{http_port}"

    creds = _credentials(state, store_url)
    agent_config = _agent_config(state, creds, grpc_port)
    exe = [sys.executable, "-m"]
    collector: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    interrupted = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"state directory: {state}")
        collector = subprocess.Popen(
            [
                *exe,
                "collector.cli",
                "serve",
                "--config",
                str(_collector_config(state)),
                "--store",
                store_url,
                "--grpc-listen",
                f"127.0.0.1:{grpc_port}",
                "--http-listen",
                f"127.0.0.1:{http_port}",
            ],
            start_new_session=True,  # Ctrl-C reaches only us: we stop the agent first, then this
        )
        _wait_http(f"{http}/healthz", collector, 60)
        agent = subprocess.Popen(
            [*exe, "agent", "run", "--config", str(agent_config)], start_new_session=True
        )
        print(
            f"collector: gRPC 127.0.0.1:{grpc_port}, HTTP {http} "
            f"(dashboard {http}/, API {http}/api/v1, docs {http}/api/v1/docs)"
        )
        print("waiting for the local agent's first results ...", flush=True)
        hosts = _wait_first_results(http, creds, 90)
        if not hosts:
            print("no results arrived within 90 s: check the agent's log above", file=sys.stderr)
            return 1
        counts = hosts[0].get("severity_counts", {})
        summary = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items()))
        print(f"first results stored for {hosts[0].get('name')}: {summary}")
        if _inspect(http, creds) != 0:
            return 1
        print(
            f"\nremote-diag is running. Dashboard: {http}/ (sign in with the token below)\n"
            "In another terminal:\n"
            f"  export DIAG_SERVER={http} DIAG_TOKEN={creds.api_token}\n"
            "  .venv/bin/diagctl hosts\n"
            f"  .venv/bin/diagctl host {hosts[0].get('name', creds.agent_id)}\n"
            f"  .venv/bin/diagctl inspections show {PLAN_NAME}\n"
            f"  .venv/bin/diagctl reports inspection {PLAN_NAME} --lang zh-CN --format pdf\n"
            "\nPress Ctrl-C to stop.",
            flush=True,
        )
        if args.exit_after_first_results:
            return 0
        while not interrupted:
            if collector.poll() is not None or agent.poll() is not None:
                print("a component exited unexpectedly; stopping", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"quickstart failed: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop(agent, "the agent")
        _stop(collector, "the collector")
        print("stopped.")


if __name__ == "__main__":
    sys.exit(main())
