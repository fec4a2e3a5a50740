"""HMAC-SHA256 signatures on webhook bodies, and their verification (for receivers and tests).

The header ``X-Diag-Signature: t=<unix seconds>,v1=<hex>`` carries the signing time and
``HMAC-SHA256(secret, "<t>." + body)``. Binding the time into the MAC lets a receiver
refuse replays older than a tolerance; ``v1`` names the scheme so it can change later.

>>> header = sign(b"s3cret", b'{"a":1}', 1_700_000_000)
>>> header.startswith("t=1700000000,v1=")
True
>>> verify(b"s3cret", b'{"a":1}', header, now=1_700_000_010)
True
>>> verify(b"s3cret", b'{"a":2}', header, now=1_700_000_010)
False
>>> verify(b"s3cret", b'{"a":1}', header, now=1_700_001_000)
False
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER: Final = "X-Diag-Signature"
"""HTTP header that carries the signature."""


def _mac(secret: bytes, body: bytes, ts: int) -> str:
    return hmac.new(secret, str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, ts: int) -> str:
    """The ``X-Diag-Signature`` value for ``body`` signed at Unix time ``ts``."""
    return f"t={ts},v1={_mac(secret, body, ts)}"


def verify(secret: bytes, body: bytes, header: str, *, now: float, tolerance_s: float = 300.0) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance_s`` of ``now``.

    Malformed headers are simply invalid (False), never an exception: they come from the network.
    """
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(name, value)
    ts_text, mac = fields.get("t", ""), fields.get("v1", "")
    if not ts_text.isdigit() or not mac:
        return False
    ts = int(ts_text)
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(_mac(secret, body, ts), mac)
