"""``python -m collector.cli``: the same as ``diag-collector``."""

from collector.cli.main import main

raise SystemExit(main())
