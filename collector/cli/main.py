"""``diag-collector``: serve, migrate, create, list and revoke API tokens, enroll agents.

``serve`` runs the gRPC side (grpc.aio) and the HTTP API (uvicorn) in one asyncio loop
and one process, prints where each listens, and stops cleanly on SIGINT or SIGTERM:
the health service turns NOT_SERVING, open agent streams are told to reconnect later
(UNAVAILABLE), and what was acknowledged is already durable, so an agent loses nothing.

``migrate``, ``token create`` and ``enroll`` open the store directly (for bootstrap,
before any API token exists); everything else goes through ``diagctl`` and the API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.cli.config import CollectorConfig, ConfigError, load_config
from collector.cli.tokens import parse_expiry
from diagconfig.completion import add_completion_option
from diagconfig.logs import configure as configure_logging
from diagconfig.logs import log_level

__all__ = ["main", "raise_fd_limit"]

log = logging.getLogger("collector.cli")

SHUTDOWN_GRACE_S = 3.0


def raise_fd_limit(want: int = 65_536) -> int:
    """Raise the soft open-files limit towards the hard one (each agent stream is a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:  # a container may forbid it; we run with less
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
            return soft
        return target
    return soft


def _redact(url: str) -> str:
    from collector.store.engine import redact_url

    return redact_url(url)


def _load(args: argparse.Namespace) -> CollectorConfig:
    overrides = {
        "grpc.listen": getattr(args, "grpc_listen", None),
        "http.listen": getattr(args, "http_listen", None),
        "store.url": getattr(args, "store", None),
    }
    return load_config(args.config, overrides)


def _open_store(config: CollectorConfig, *, migrate: bool = True) -> Any:
    from collector.ingest.decode import decode_logged
    from collector.store import Store

    url = config.store_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return Store.open(
        url,
        migrate=migrate,
        synchronous=config.store.sqlite_synchronous,
        retention=config.store.retention.policy(),
        log_decoder=decode_logged,
    )


def bind_listener(listen: str, what: str) -> socket.socket:
    """A listening socket on ``listen``, bound here so that a port in use is a one-line error.

    For HTTP it is the server's socket: uvicorn would otherwise find out inside its own
    startup and exit the process with a traceback and status 3. For gRPC it is a probe,
    closed at once, because gRPC's core logs its own multi-line complaint before ours.
    SO_REUSEADDR as both servers set it: a port held only by TIME_WAIT connections of a
    previous run is free.
    """
    host, port = _split(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "the port is in use (another collector?)" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise OSError(f"cannot listen for {what} on {listen}: {reason}") from None
    sock.set_inheritable(False)
    return sock


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


# --- serve ----------------------------------------------------------------------------------------


def _grpc_settings(config: CollectorConfig) -> Any:
    from collector.ingest.grpc_service import GrpcSettings

    g = config.grpc
    tls = g.tls
    return GrpcSettings(
        listen=g.listen,
        max_message_bytes=g.max_message_bytes,
        max_batch_entries=g.max_batch_entries,
        rate_limit_entries_per_s=float(g.rate_limit_entries_per_s),
        rate_limit_burst=float(g.rate_limit_burst),
        rate_limit_bytes_per_s=float(g.rate_limit_bytes_per_s),
        rate_limit_bytes_burst=float(g.rate_limit_bytes_burst),
        max_clock_skew_s=float(g.max_clock_skew_s),
        heartbeat_interval_s=int(g.heartbeat_interval_s),
        tls_cert_file=tls.cert_file if tls else None,
        tls_key_file=tls.key_file if tls else None,
        tls_client_ca_file=tls.client_ca_file if tls else None,
    )


@contextlib.contextmanager
def _no_signal_capture() -> Generator[None, None, None]:
    yield


async def _retention_loop(store: Any, interval_s: float) -> None:
    """Apply the retention policy every ``interval_s`` (first run one interval after start)."""
    from collector.store.errors import DatabaseError

    while True:
        await asyncio.sleep(interval_s)
        try:
            removed = await asyncio.to_thread(store.apply_retention)
        except DatabaseError as exc:  # a busy or unreachable store: try again next interval
            log.warning("retention failed: %s", type(exc).__name__)
            continue
        log.info("retention applied: %s", removed)


async def _tick_loop(store: Any) -> None:
    """Ingest runs in this process: let its observers act on time passing."""
    while True:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(store.tick_observers)


async def _drain_log_loop(store: Any) -> None:
    """In-process ingest: materialise log rows left by worker processes or another collector."""
    from collector.store.errors import DatabaseError

    while True:
        try:
            while (await asyncio.to_thread(store.materialise)).batches:
                pass
        except DatabaseError as exc:  # busy or unreachable: the rows stay, try again
            log.warning("materialising the ingest log failed: %s", type(exc).__name__)
        await asyncio.sleep(1.0)


async def _serve(
    config: CollectorConfig, ingest_processes: int = 0, log_settings: dict[str, Any] | None = None
) -> int:
    import uvicorn

    from collector.cli.followup import build_followup
    from collector.http.app import create_app
    from collector.ingest.grpc_server import start_grpc_server, stop_grpc_server
    from collector.ingest.grpc_service import AgentStreamService
    from collector.ingest.metrics import CollectorMetrics

    class _Server(uvicorn.Server):
        # We own SIGINT/SIGTERM for both servers; uvicorn must not install (and later
        # re-raise) its own handlers.
        def capture_signals(self) -> contextlib._GeneratorContextManager[None, None, None]:
            return _no_signal_capture()

    fds = raise_fd_limit()
    url = config.store_url
    try:  # first: a port in use is one clear line before anything has started
        http_socket = bind_listener(config.http.listen, "HTTP")
    except OSError as exc:
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 1
    try:
        if _split(config.grpc.listen)[1] != 0:
            bind_listener(config.grpc.listen, "gRPC").close()
    except OSError as exc:
        http_socket.close()
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 1
    store = await asyncio.to_thread(_open_store, config)
    metrics = CollectorMetrics()
    settings = _grpc_settings(config)
    from collector.ingest.decode import IngestLimits
    from collector.ingest.process import IngestProcess
    from collector.ingest.worker import LogSettings

    workers = [
        IngestProcess(
            url,
            {
                "synchronous": config.store.sqlite_synchronous,
                "retention": config.store.retention.policy(),
                "config": config,  # pickled whole: a JSON dump would mask its secrets
            },
            IngestLimits(
                max_batch_entries=settings.max_batch_entries, max_clock_skew_s=settings.max_clock_skew_s
            ),
            log_settings=LogSettings(shard_count=ingest_processes, shard_index=i, **(log_settings or {})),
        )
        for i in range(ingest_processes)
    ]
    metrics.watch_ingest_log(store.log_stats, time.time)
    for worker in workers:
        await asyncio.to_thread(worker.start)
    from collector.sessions.relay import SessionHub

    hub = SessionHub(store, metrics.registry)
    service = AgentStreamService(store, settings, metrics, ingest_processes=workers, sessions=hub)
    hub.attach(service)
    if not workers:  # ingest commits in this process: observers (detection) run here
        from collector.store.observe import build_observer

        observer = await asyncio.to_thread(build_observer, store, config)
        if observer is not None:
            store.add_observer(observer)
    try:
        grpc_server, grpc_port, health = await start_grpc_server(service, settings)
    except (OSError, ValueError) as exc:
        for worker in workers:
            worker.close()
        store.close()
        http_socket.close()
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 1
    http_host, http_port = _split(config.http.listen)
    endpoint = config.grpc.agent_endpoint(bound_port=grpc_port)
    app = create_app(
        store,
        metrics.registry,
        grpc_address=f"{_split(settings.listen)[0]}:{grpc_port}",
        grpc_service=service,
        agent_endpoint=endpoint,
        public_url=config.emergency.public_url,
        sessions=hub,
        followup=build_followup(config),
    )
    web = _Server(
        uvicorn.Config(
            app, host=http_host, port=http_port, log_level="warning", access_log=False, lifespan="on"
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    web_task = asyncio.create_task(web.serve(sockets=[http_socket]))
    retention_task = asyncio.create_task(_retention_loop(store, config.store.retention.interval_s))
    from collector.cli.serve_context import ServeContext
    from collector.desk import service as desk_service
    from collector.emergency import service as incidents_service
    from collector.inspections import service as inspections_service
    from collector.records import schedule as records_schedule

    ctx = ServeContext(store=store, config=config, grpc=service, metrics=metrics, stop=stop)
    background = [
        *incidents_service.start(ctx),
        *inspections_service.start(ctx),
        *desk_service.start(ctx, notifier=incidents_service.current_notifier),
    ]
    background += records_schedule.start(ctx, inspections_service.service_for(store, service).runner)
    background.append(asyncio.create_task(hub.expiry_loop()))
    if not workers:
        background.append(asyncio.create_task(_tick_loop(store)))
        background.append(asyncio.create_task(_drain_log_loop(store)))
    while not web.started and not web_task.done():
        await asyncio.sleep(0.02)
    rc = 0
    if web_task.done():
        print(f"diag-collector: cannot serve HTTP on {config.http.listen}", file=sys.stderr)
        rc = 1
    else:
        bound = web.servers[0].sockets[0].getsockname()[1] if web.servers else http_port
        grpc_host = _split(settings.listen)[0]
        scheme = "grpcs" if settings.tls_cert_file else "grpc"
        base = f"http://{http_host}:{bound}"
        print(
            f"diag-collector: gRPC (agents) on {scheme}://{grpc_host}:{grpc_port}"
            f"{' with mTLS' if settings.tls_client_ca_file else ''}\n"
            f"diag-collector: HTTP on {base} (health {base}/healthz, metrics {base}/metrics)\n"
            f"diag-collector: dashboard on {base}/ (sign in with an API token)\n"
            f"diag-collector: API on {base}/api/v1 (docs at {base}/api/v1/docs)\n"
            f"diag-collector: store {_redact(url)}; open-files limit {fds}; Ctrl-C stops",
            flush=True,
        )
        if endpoint.error:  # serving works; enrolling agents will not until it is set
            print(f"diag-collector: enrolment refused until fixed: {endpoint.error}", file=sys.stderr)
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({stop_wait, web_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if web_task.done() and not stop.is_set():
            rc = 1
    print("diag-collector: stopping", flush=True)
    retention_task.cancel()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    web.should_exit = True
    await hub.close()
    await stop_grpc_server(grpc_server, service, health, SHUTDOWN_GRACE_S)
    with contextlib.suppress(asyncio.CancelledError, SystemExit):
        await asyncio.wait_for(web_task, SHUTDOWN_GRACE_S + 2)
    for worker in workers:
        await asyncio.to_thread(worker.close)
    await asyncio.to_thread(store.close)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    print("diag-collector: stopped", flush=True)
    return rc


def _cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args)
    from collector.emergency.config import maintenance_calendar

    maintenance_calendar(config.emergency)  # a bad windows file stops serve here: exit 2, naming it
    log_settings = {
        "max_pending_points": args.ingest_log_max_points,
        "direct_max_points": args.ingest_direct_max_points,
    }
    return asyncio.run(_serve(config, ingest_processes=args.ingest_processes, log_settings=log_settings))


# --- store commands -------------------------------------------------------------------------------


def _cmd_migrate(args: argparse.Namespace) -> int:
    config = _load(args)
    _open_store(config).close()
    print(f"diag-collector: store {_redact(config.store_url)} is at the latest schema")
    return 0


def _cmd_token_create(args: argparse.Namespace) -> int:
    from collector.store import StoreError

    config = _load(args)
    store = _open_store(config)
    expires_at = None if args.expires is None else time.time() + args.expires
    try:
        token = store.create_api_token(args.name, args.role, args.customer, expires_at=expires_at)
    except StoreError as exc:
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    scope = f"customer {args.customer}" if args.customer else "all customers"
    if expires_at is not None:
        scope += ", expires " + datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%MZ")
    # Only the token on stdout, so TOKEN=$(diag-collector token create ...) captures just it.
    print(f"diag-collector: API token {args.name!r} ({args.role}, {scope}); shown once:", file=sys.stderr)
    print(token)
    return 0


def _cmd_token_other(args: argparse.Namespace) -> int:
    from collector.cli import tokens as token_cli

    store = _open_store(_load(args))
    try:
        command = token_cli.token_list if args.token_command == "list" else token_cli.token_revoke
        return command(store, args)
    finally:
        store.close()


def _cmd_enroll(args: argparse.Namespace) -> int:
    from collector.ingest.enrolment import EnrolmentError, enrol
    from collector.store import StoreError

    config = _load(args)
    endpoint = config.grpc.agent_endpoint()
    try:
        endpoint.require()  # before opening the store: the setting to add comes first
    except EnrolmentError as exc:
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 2
    if args.output not in (None, "-") and os.path.lexists(args.output):
        print(f"diag-collector: {args.output} exists; name a new file", file=sys.stderr)
        return 2
    store = _open_store(config)
    try:
        enrolled = enrol(store, endpoint, args.customer, args.host, args.agent_id)
    except (EnrolmentError, StoreError) as exc:
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    who = enrolled.identity
    _write_or_print(enrolled.config, args.output, f"agent {who.agent_id} (customer {who.customer})")
    return 0


def _write_or_print(text: str, output: str | None, what: str) -> None:
    """A secret-bearing file: to ``output`` (mode 0600, refusing to overwrite) or stdout."""
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:  # enrolled already: hand the config out rather than lose the token
        print(f"diag-collector: cannot write {output}: {exc.strerror}; the config follows", file=sys.stderr)
        sys.stdout.write(text)
        return
    print(f"diag-collector: wrote the config of {what} to {output}", file=sys.stderr)


# --- entry point ----------------------------------------------------------------------------------


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from agent import __version__  # one version for the distribution; agent/__init__ imports nothing

    parser = argparse.ArgumentParser(prog="diag-collector", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"diag-collector {__version__}")
    add_completion_option(parser)
    parser.add_argument(
        "--log-level",
        type=log_level,
        default="info",
        metavar="{debug,info,warning,error}",
        help="stderr log level (default info; other libraries' lines only at debug)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="PATH", help="collector YAML config")
        p.add_argument("--store", metavar="URL", help="sqlite:///path.db or postgresql+psycopg://...")

    serve = sub.add_parser("serve", help="run the gRPC and HTTP servers")
    common(serve)
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help="default 127.0.0.1:50051")
    serve.add_argument("--http-listen", metavar="HOST:PORT", help="default 127.0.0.1:8080")
    serve.add_argument(
        "--ingest-processes",
        type=int,
        default=1,
        metavar="N",
        help="validate batches and append them to the ingest log in N worker processes, which "
        "materialise it behind the Acks (default 1; 0: validate and store in the serving process, "
        "no log)",
    )
    serve.add_argument(
        "--ingest-log-max-points",
        type=_count(minimum=1),
        default=2_000_000,
        metavar="N",
        help="the bound of each worker's ingest log, in unmaterialised metric points (default "
        "2000000); at the bound batches are stored before their Ack, which slows the agents",
    )
    serve.add_argument(
        "--ingest-direct-max-points",
        type=_count(minimum=0),
        default=10_000,
        metavar="N",
        help="with an empty ingest log, store a worker's group of at most N points directly "
        "(visible at its Ack) instead of logging it (default 10000; 0: always log)",
    )
    serve.set_defaults(func=_cmd_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the store schema")
    common(migrate)
    migrate.set_defaults(func=_cmd_migrate)

    token = sub.add_parser("token", help="API tokens for diagctl and the HTTP API")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create an API token (printed once)")
    common(create)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--role", default="engineer", choices=["engineer", "customer_admin", "viewer", "service_manager"]
    )
    create.add_argument("--customer", help="required for customer_admin and viewer")
    create.add_argument(
        "--expires",
        metavar="DURATION",
        type=parse_expiry,
        help="refused after 12h, 90d, 2w... (default: never)",
    )
    create.set_defaults(func=_cmd_token_create)
    listing = token_sub.add_parser("list", help="list API tokens (never the token itself)")
    common(listing)
    listing.add_argument("--customer")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(func=_cmd_token_other)
    revoke = token_sub.add_parser("revoke", help="revoke an API token by its id (from token list)")
    common(revoke)
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=_cmd_token_other)

    enroll = sub.add_parser("enroll", help="enroll an agent directly in the store (bootstrap)")
    common(enroll)
    enroll.add_argument("--customer", required=True)
    enroll.add_argument("--host")
    enroll.add_argument("--agent-id")
    enroll.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write the agent's config file here (mode 0600) instead of stdout",
    )
    enroll.set_defaults(func=_cmd_enroll)

    # These own their arguments (see `diag-collector quickstart --help`); they are
    # listed here so that `diag-collector --help` shows them.
    for name, text in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


DELEGATED = {
    "quickstart": "start a collector on embedded SQLite plus a local agent streaming to it",
    "replay": "run recorded series (CSV) through the detector; one JSON line per anomaly",
    "check-plans": "validate inspection plan files (file: path: reason per problem)",
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATED:
        if args_list[0] == "quickstart":
            from collector.cli import quickstart

            return quickstart.main(args_list[1:])
        if args_list[0] == "check-plans":
            from collector.cli import check_plans as check

            return check.main(args_list[1:])
        from collector.cli import replay

        return replay.main(args_list[1:])
    args = build_parser().parse_args(args_list)
    configure_logging(args.log_level)
    try:
        rc: int = args.func(args)
    except ConfigError as exc:
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
