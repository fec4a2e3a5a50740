"""``diag-collector check-plans [DIR]``: validate inspection plan files before the collector loads them.

Prints one line per problem (``<file>: <path>: <what was expected>``) and a summary of
the valid plans; exit status 0 when every file is valid, 1 otherwise, 2 on usage errors.
Without DIR it checks the collector config's ``inspections.plans_dir``. With ``--store``
(or a config naming one) plans without ``timezone`` take their customer's time zone, as
``serve`` does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diag-collector check-plans", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, help="default: the config's inspections.plans_dir")
    parser.add_argument("--config", metavar="PATH", help="collector YAML config")
    parser.add_argument("--store", metavar="URL", help="read customers' time zones from this store")
    args = parser.parse_args(argv)

    from collector.cli.config import ConfigError, load_config
    from collector.inspections.service import check_plans

    try:
        config = load_config(args.config, {"store.url": args.store})
    except ConfigError as exc:
        print(f"diag-collector: {exc}", file=sys.stderr)
        return 2
    directory = args.directory or config.inspections.plans_path(config.state_dir)
    zones: dict[str, str] = {}
    if args.store or args.config:
        from collector.store import Store
        from collector.store.inspections import InspectionRepo

        store = Store.open(config.store_url, migrate=False)
        try:
            zones = InspectionRepo(store).timezones()
        finally:
            store.close()
    plans, errors = check_plans(directory, zones)
    for line in errors:
        print(line, file=sys.stderr)
    now = datetime.now(UTC)
    for plan in plans:
        due = plan.cron().next_after(now).isoformat(timespec="minutes")
        print(f"ok  {plan.customer}/{plan.name}: {plan.schedule} ({plan.timezone}), next {due}")
    print(f"{len(plans)} valid plan(s), {len(errors)} problem(s) in {directory}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
