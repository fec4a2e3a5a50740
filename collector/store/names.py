"""Names the store accepts and derives: customer slugs, agent ids, host and token names, shards."""

from __future__ import annotations

import re
import zlib

from collector.store.errors import StoreError

__all__ = ["check_name", "check_slug", "customer_agent_id", "customer_shard"]

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def check_slug(customer: str) -> str:
    """``customer`` if it is a valid slug, else StoreError saying what one looks like."""
    if not _SLUG_RE.match(customer):
        raise StoreError(
            f"customer {customer!r} is not a valid slug: lowercase letters, digits and '-', "
            "starting with a letter or digit, at most 63 characters"
        )
    return customer


def customer_agent_id(customer: str, agent_id: str) -> str:
    """The id an agent chosen by ``customer``'s own people gets: inside the customer's
    namespace ``<customer>.``, so a customer can neither probe (409 against 201) nor
    squat another customer's ids, nor the vendor's ids without a '.'.

    >>> customer_agent_id("acme", "db-01"), customer_agent_id("acme", "acme.db-01")
    ('acme.db-01', 'acme.db-01')
    >>> customer_agent_id("acme", "globex.db-01")
    'acme.globex.db-01'
    """
    return agent_id if agent_id.startswith(f"{customer}.") else f"{customer}.{agent_id}"


def check_name(kind: str, value: str) -> str:
    """``value`` if it is a printable name of 1-253 characters, else StoreError naming ``kind``."""
    if not value or len(value) > 253 or not value.isprintable() or value.strip() != value:
        raise StoreError(f"{kind} {value!r} must be 1-253 printable characters without surrounding spaces")
    return value


def customer_shard(customer: str) -> int:
    """The ingest-log shard of a customer: stable across processes and collectors.

    >>> customer_shard("acme") == customer_shard("acme"), 0 <= customer_shard("acme") < 2**32
    (True, True)
    """
    return zlib.crc32(customer.encode())
