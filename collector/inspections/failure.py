"""What a failed inspection run says, and to whom.

An unexpected error in a run (a database error, a bug) is logged in full with a short
random reference; the run records only ``internal error (log reference <ref>)``. No SQL,
exception text or stack ever reaches the run record, so nothing internal can reach a
customer's people through the API, diagctl or a report. Engineers see the reference (to
find the log entry); customer roles see :data:`PUBLIC_INTERNAL_ERROR` only.

>>> error = internal_failure("4f3a9c1d2b7e")
>>> error
'internal error (log reference 4f3a9c1d2b7e)'
>>> shown_error(error, engineer=True) == error, shown_error(error, engineer=False)
(True, 'the inspection could not be completed because of an internal error; the vendor has been notified')
>>> shown_error("no host matches the plan's selector", engineer=False)
"no host matches the plan's selector"
"""

from __future__ import annotations

import secrets
from typing import Final

__all__ = ["PUBLIC_INTERNAL_ERROR", "internal_failure", "new_reference", "shown_error"]

_PREFIX: Final = "internal error"
PUBLIC_INTERNAL_ERROR: Final = (
    "the inspection could not be completed because of an internal error; the vendor has been notified"
)


def new_reference() -> str:
    """A short random reference that ties a run's recorded error to its log entry."""
    return secrets.token_hex(6)


def internal_failure(reference: str) -> str:
    """The error recorded for a run that failed unexpectedly (see the module docstring)."""
    return f"{_PREFIX} (log reference {reference})"


def shown_error(error: str | None, *, engineer: bool) -> str | None:
    """The run's error as ``engineer`` or a customer role may see it.

    Runs recorded before this rule kept the exception text after ``internal error:``;
    those are hidden from customer roles too.
    """
    if error is None or engineer or not error.startswith(_PREFIX):
        return error
    return PUBLIC_INTERNAL_ERROR
