"""``diag-agent``: run checks once, show the inventory, validate a config, or run the daemon.

Exit codes: 0 success, 2 usage or configuration error, 1 runtime failure. Every
error message says what to do next. Start-up stays light: modules are imported by
the subcommand that needs them, and neither ``checks`` nor ``run`` imports paramiko,
grpc, sqlalchemy or fastapi.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agent import __version__
from diagconfig.logs import configure as configure_logging
from diagconfig.logs import log_level

if TYPE_CHECKING:
    from agent.config import LoadedConfig
    from agent.runner import RunReport

from diagconfig.completion import add_completion_option

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
LAYERS = ("host", "network", "storage", "platform", "application")

log = logging.getLogger("diag_agent")


class _UsageError(Exception):
    """Bad arguments or config: exit 2."""


class _RuntimeFailure(Exception):
    """Could not do the job: exit 1."""


# --- parser -------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got {text}")
    return value


def _sample_interval(text: str) -> float:
    from agent.sampling import MAX_SAMPLE_INTERVAL_S

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value <= MAX_SAMPLE_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"expected seconds between 0 and {MAX_SAMPLE_INTERVAL_S:g} (0 turns sampling off), got {text}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``diag-agent`` (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="diag-agent",
        description="Runs remote-diag's inspection checks on this host and spools the results.",
    )
    parser.add_argument("--version", action="version", version=f"diag-agent {__version__}")
    add_completion_option(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    checks = sub.add_parser("checks", help="run the checks once and print the results")
    checks.add_argument("--config", type=Path, help="agent config file (default: built-in defaults)")
    checks.add_argument(
        "--layer", action="append", choices=LAYERS, default=[], help="only this layer (repeatable)"
    )
    checks.add_argument(
        "--check", action="append", default=[], metavar="NAME", help="only this check (repeatable)"
    )
    checks.add_argument("--format", choices=("table", "json"), default="table")
    checks.add_argument("--show-skipped", action="store_true", help="include skipped checks in JSON output")
    checks.add_argument(
        "--state-dir", type=Path, help="keep the checks' state (for rates) here; default: in memory only"
    )
    checks.add_argument(
        "--sample-interval",
        type=_sample_interval,
        default=None,
        metavar="SECONDS",
        help="without a previous reading, sample rate checks twice this far apart "
        "(default 1; 0: once, rates from the next run)",
    )

    inventory = sub.add_parser("inventory", help="print the host inventory")
    inventory.add_argument("--config", type=Path, help="agent config file (products to report)")
    inventory.add_argument("--format", choices=("table", "json"), default="table")

    check_config = sub.add_parser("check-config", help="validate a config file")
    check_config.add_argument("path", type=Path)

    run = sub.add_parser("run", help="run the agent daemon")
    run.add_argument("--config", type=Path, required=True, help="agent config file")
    run.add_argument(
        "--interval", type=_positive_float, help="base interval in seconds (overrides agent.interval_s)"
    )
    run.add_argument("--state-dir", type=Path, help="spool and state directory (overrides agent.state_dir)")
    run.add_argument(
        "--collector", metavar="HOST:PORT", help="collector address (overrides collector.address)"
    )
    run.add_argument(
        "--token", help="enrollment token (overrides collector.token; visible in ps, prefer the file)"
    )
    run.add_argument("--once", action="store_true", help="run every enabled check once, spool, and exit")
    run.add_argument(
        "--log-level",
        type=log_level,
        default="info",
        metavar="{debug,info,warning,error}",
        help="stderr log level (default info; other libraries' lines only at debug)",
    )
    from agent.sessions.cli import add_parser as add_sessions_parser

    add_sessions_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diag-agent`` console script. Returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    handlers = {
        "checks": _cmd_checks,
        "inventory": _cmd_inventory,
        "check-config": _cmd_check_config,
        "run": _cmd_run,
        "sessions": _cmd_sessions,
    }
    from diagconfig.terminal import terminal_text

    try:
        return handlers[args.command](args)
    except _UsageError as exc:
        print(f"diag-agent {args.command}: {terminal_text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except _RuntimeFailure as exc:
        print(f"diag-agent {args.command}: {terminal_text(str(exc))}", file=sys.stderr)
        return EXIT_RUNTIME
    except BrokenPipeError:
        # Output piped into `head`: not an error of ours. Point stdout at devnull so the
        # interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


# --- config -------------------------------------------------------------------------------


def _registry() -> Mapping[str, Any]:
    from checks.registry import all_checks

    try:
        return all_checks()
    except Exception as exc:  # any import-time bug of a check module: one line, not a traceback
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise _RuntimeFailure(
            f"a check module failed to load ({type(exc).__name__}: {first}); "
            "reinstall the agent or report this bug"
        ) from exc


def _load(path: Path | None, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> LoadedConfig:
    from agent.config import ConfigError, default_config, load_config

    registry = _registry()
    try:
        if path is None:
            return default_config(registry)
        return load_config(path, overrides, registry)
    except ConfigError as exc:
        hint = f"Fix the file and validate it with: diag-agent check-config {path}"
        raise _UsageError(f"invalid configuration:\n{exc}\n{hint}") from None


# --- checks -------------------------------------------------------------------------------


def _cmd_checks(args: argparse.Namespace) -> int:
    from agent.runner import AgentProbe
    from agent.sampling import DEFAULT_SAMPLE_INTERVAL_S, run_sampled
    from agent.state import StateStore

    loaded = _load(args.config)
    plans = list(loaded.plans)
    if args.check:
        names = [p.name for p in plans]
        unknown = [n for n in args.check if n not in names]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
                hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
            raise _UsageError(f"unknown check {', '.join(hints)}; valid checks: {', '.join(names)}")
        plans = [p for p in plans if p.name in args.check]  # named explicitly: runs even if disabled
    else:
        plans = [p for p in plans if p.enabled]
    if args.layer:
        plans = [p for p in plans if p.check.layer.value in args.layer]
    state = StateStore(args.state_dir)
    interval = DEFAULT_SAMPLE_INTERVAL_S if args.sample_interval is None else args.sample_interval
    report = run_sampled(
        plans, AgentProbe(), state, loaded.config.agent.max_workers, loaded.secrets(), interval_s=interval
    )
    if args.state_dir is not None:
        try:
            state.save()
        except OSError as exc:
            raise _RuntimeFailure(
                f"could not save state in {args.state_dir}: {exc.strerror or exc}"
            ) from None
    if args.format == "json":
        _print_json(report, args.show_skipped)
    else:
        _print_table(report, sys.stdout)
    if report.abandoned:
        # Hung threads are daemon threads: the process can exit, but say so.
        print(f"diag-agent checks: timed out and abandoned: {', '.join(report.abandoned)}", file=sys.stderr)
    return EXIT_OK


def _print_json(report: RunReport, show_skipped: bool) -> None:
    items: list[dict[str, Any]] = []
    for outcome in report.outcomes:
        if outcome.record is not None:
            items.append(outcome.record.to_dict())
        elif outcome.skip is not None and show_skipped:
            items.append(outcome.skip.to_dict())
    json.dump(items, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


_COLOURS = {"OK": "32", "WARN": "33", "CRIT": "31", "UNKNOWN": "35", "SKIP": "2"}
MAX_SUMMARY = 100


def _print_table(report: RunReport, out: TextIO) -> None:
    from diagconfig.terminal import cell_text, display_width, pad

    rows: list[tuple[str, ...]] = []
    for outcome in report.outcomes:
        if outcome.record is not None:
            rec = outcome.record
            # Summaries come from checks, plugins and commands: no terminal control in them.
            summary = cell_text(rec.summary)
            if len(summary) > MAX_SUMMARY:
                summary = summary[: MAX_SUMMARY - 1] + "…"
            rows.append((rec.layer, rec.check, rec.severity, rec.key, summary, _duration(rec.duration_ms)))
        elif outcome.skip is not None:
            skip = outcome.skip
            rows.append((skip.layer, skip.check, "SKIP", "-", skip.reason, "-"))
    header = ("LAYER", "CHECK", "SEVERITY", "KEY", "SUMMARY", "DURATION")
    rows = [tuple(cell_text(cell) for cell in row) for row in rows]
    widths = [max(display_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    colour = out.isatty() and "NO_COLOR" not in os.environ
    for row in [header, *rows]:
        cells = []
        for i, cell in enumerate(row):
            padded = pad(cell, widths[i], right=i == len(row) - 1)
            if colour and i == 2 and row is not header and cell in _COLOURS:
                padded = f"\033[{_COLOURS[cell]}m{padded}\033[0m"
            cells.append(padded)
        out.write("  ".join(cells).rstrip() + "\n")


def _duration(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


# --- inventory ----------------------------------------------------------------------------


def _cmd_inventory(args: argparse.Namespace) -> int:
    from agent.inventory import collect
    from agent.runner import AgentProbe

    loaded = _load(args.config)
    try:
        facts = collect(AgentProbe(), loaded.config.inventory.products)
    except Exception as exc:  # the inventory collector's failure is reported in one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise _RuntimeFailure(f"inventory collection failed: {type(exc).__name__}: {first}") from exc
    if args.format == "json":
        json.dump(facts, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        from diagconfig.terminal import table_lines

        # Product names and versions come from config and from commands' output.
        sys.stdout.writelines(line + "\n" for line in table_lines(("KEY", "VALUE"), _flatten("", facts))[1:])
    return EXIT_OK


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out.extend(_flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    if isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
        out = []
        for i, item in enumerate(value):
            label = str(item.get("name", i)) if isinstance(item, Mapping) else str(i)
            out.extend(_flatten(f"{prefix}[{label}]", item))
        return out
    if isinstance(value, list | tuple):
        return [(prefix, ", ".join(str(v) for v in value))]
    return [(prefix, "" if value is None else str(value))]


# --- check-config -------------------------------------------------------------------------


def _cmd_check_config(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, load_config

    registry = _registry()
    try:
        loaded = load_config(args.path, registry=registry)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) found; fix them and run this command again.", file=sys.stderr)
        return EXIT_USAGE
    print(f"OK: {len(loaded.enabled_plans)} checks enabled (of {len(loaded.plans)} known)")
    return EXIT_OK


# --- run ----------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    overrides: dict[str, dict[str, Any]] = {}
    if args.interval is not None:
        overrides.setdefault("agent", {})["interval_s"] = args.interval
    if args.state_dir is not None:
        overrides.setdefault("agent", {})["state_dir"] = str(args.state_dir)
    if args.collector is not None:
        overrides.setdefault("collector", {})["address"] = args.collector
    if args.token is not None:
        overrides.setdefault("collector", {})["token"] = args.token
    from agent import memory

    memory.before_load()
    loaded = _load(args.config, overrides)
    config = loaded.config

    import signal

    from agent.inspection import InspectionQueue, request_from_proto
    from agent.inventory import collect
    from agent.runner import AgentProbe
    from agent.scheduler import Scheduler
    from agent.sink import SpoolSink
    from agent.spool import Spool
    from agent.state import StateStore

    state_dir = config.agent.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        spool = Spool(config.spool_path, config.spool.max_bytes)
    except (OSError, _sqlite_error()) as exc:
        raise _RuntimeFailure(
            f"cannot open the spool {config.spool_path}: {exc}; make {state_dir} writable for this user "
            "or pass --state-dir DIR"
        ) from None
    probe = AgentProbe()
    products = config.inventory.products
    # The spool is the only hand-over: the streamer reads it on its own thread, is woken
    # by SpoolSink(on_write=...) and deletes entries only once the collector acknowledged
    # them. The agent never imports grpcio (~18 MB RSS): agent/grpc_h2.py speaks gRPC
    # over HTTP/2 with the small h2 library, imported only when a collector is configured.
    # The collector's InspectionRequests reach the scheduler through this queue; the
    # streamer's thread only validates and enqueues them, then wakes the loop.
    inspections = InspectionQueue()
    wake: list[Any] = []

    def on_inspection(request: Any) -> None:
        if inspections.offer(request_from_proto(request)) and wake:
            wake[0]()

    sessions = _session_handler(loaded, spool)
    streamer = _start_streamer(config, spool, on_inspection, sessions)
    if sessions is not None and streamer is not None:
        sessions.events_notify(streamer.notify)
    scheduler = Scheduler(
        loaded.plans,
        probe=probe,
        state=StateStore(state_dir),
        sink=SpoolSink(spool, on_write=streamer.notify if streamer is not None else None),
        agent_id=config.agent.id,
        base_interval_s=config.agent.interval_s,
        jitter_s=config.agent.effective_jitter_s,
        max_workers=config.agent.max_workers,
        secrets=loaded.secrets(),
        inventory=lambda: collect(probe, products),
        inspections=inspections,
    )
    wake.append(scheduler.wake)

    def stop(signum: int, frame: object) -> None:
        scheduler.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("spool %s (max %d bytes); config %s", config.spool_path, config.spool.max_bytes, loaded.source)
    memory.after_start()
    try:
        scheduler.run(once=args.once)
    except Exception as exc:  # a bug in the loop: one line on stderr, the traceback at debug level
        log.debug("scheduler failed", exc_info=True)
        raise _RuntimeFailure(
            f"the scheduler failed: {type(exc).__name__}: {exc}; rerun with --log-level debug"
        ) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sessions is not None:
            sessions.close()
        if streamer is not None:
            streamer.stop(flush_timeout_s=5.0)
        spool.close()
    return EXIT_OK


def _session_handler(loaded: LoadedConfig, spool: Any) -> Any:
    """The session frames' handler: a refuser when sessions are disabled (the default)."""
    config = loaded.config
    if not config.collector.address:
        return None
    from agent.sessions.manager import Refuser, SpoolEvents

    events = SpoolEvents(spool)
    if not config.sessions.enabled:
        return Refuser(events, loaded.source)
    import importlib.util

    if importlib.util.find_spec("paramiko") is None:
        raise _UsageError(
            f"sessions.enabled is true in {loaded.source} but paramiko is not installed; "
            "install it with: pip install 'remote-diag[sessions]' (or set sessions.enabled: false)"
        )
    from agent.sessions.manager import SessionManager

    manager = SessionManager(config.sessions, config.agent.id, config.agent.state_dir, events, loaded.source)
    try:
        manager.start()
    except OSError as exc:
        raise _RuntimeFailure(
            f"cannot start remote sessions in {config.agent.state_dir / 'sessions'}: {exc}; "
            "make the state directory writable for this user"
        ) from None
    log.info("remote sessions enabled (modes: %s)", ", ".join(config.sessions.modes))
    return manager


def _cmd_sessions(args: argparse.Namespace) -> int:
    from agent.sessions.cli import run

    try:
        return run(args, _state_dir_of(args))
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    except RuntimeError as exc:
        raise _RuntimeFailure(str(exc)) from None


def _state_dir_of(args: argparse.Namespace) -> Path:
    if args.state_dir is not None:
        return Path(args.state_dir)
    if args.config is not None:
        return _load(args.config).config.agent.state_dir
    from agent.config import DEFAULT_STATE_DIR

    return DEFAULT_STATE_DIR


def _start_streamer(config: Any, spool: Any, on_inspection: Any = None, sessions: Any = None) -> Any:
    """Start streaming the spool when ``collector.address`` and ``token`` are configured."""
    collector = config.collector
    if not collector.address:
        log.info("no collector.address configured: results stay in the spool")
        return None
    if not collector.token:
        raise _UsageError(
            "collector.address is set but collector.token is not; enroll the agent with "
            "`diagctl agents enroll --customer C --host H` and put the token in the config"
        )
    from agent import __version__
    from agent.streamer import HostIdentity, Streamer, StreamerSettings

    streamer = Streamer(
        spool,
        StreamerSettings.from_config(collector),
        HostIdentity(config.agent.id, labels=dict(config.agent.labels), agent_version=__version__),
        on_inspection=on_inspection,
        sessions=sessions,
    )
    streamer.start()
    log.info("streaming to %s", collector.address)
    return streamer


def _sqlite_error() -> type[Exception]:
    import sqlite3

    return sqlite3.Error


if __name__ == "__main__":
    raise SystemExit(main())
