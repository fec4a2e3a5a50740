"""Materialise the whole ingest log in a test, bounded so a bug fails fast with a message.

``while store.materialise(): pass`` never ends when a bug makes a row come back (a
quarantined row picked again, a row applied but not deleted): the test then hangs to
pytest's timeout and says nothing. Each round that reports work must have taken at
least one pending row off the log, so there can be at most as many such rounds as
there were pending rows (plus rows appended meanwhile, which these tests do not do).
"""

from __future__ import annotations

from typing import Any

from collector.store import Store
from collector.store.store import Materialised


def materialise_all(store: Store, slack: int = 2, **kwargs: Any) -> Materialised:
    """Call ``store.materialise(**kwargs)`` until it reports nothing; the totals.

    Fails (AssertionError naming the rows seen again) after ``pending + slack`` rounds.
    """
    pending = store.log_stats().pending_batches
    total = Materialised()
    for _ in range(pending + slack):
        done = store.materialise(**kwargs)
        if not done.batches + done.quarantined:
            return total
        total.batches += done.batches
        total.points += done.points
        total.quarantined += done.quarantined
        total.applied_ids.extend(done.applied_ids)
    raise AssertionError(
        f"materialise() still reports work after {pending + slack} rounds for {pending} pending "
        f"row(s) (applied {total.batches}, quarantined {total.quarantined}): a row is being "
        "applied or quarantined again and again"
    )
