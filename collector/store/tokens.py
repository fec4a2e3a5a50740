"""Bearer tokens: generated with 256 bits of entropy, stored only as SHA-256 digests.

A fast hash is right here: the tokens are random, not passwords, so there is nothing to
brute-force, and authentication stays cheap on every stream and request.

>>> token = new_token("dga")
>>> token.startswith("dga_") and len(token) == 47
True
>>> len(hash_token(token)), display_prefix(token) == token[:8]
(64, True)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = [
    "AGENT_TOKEN_KIND",
    "API_TOKEN_KIND",
    "digest_matches",
    "display_prefix",
    "hash_token",
    "new_token",
]

AGENT_TOKEN_KIND = "dga"
API_TOKEN_KIND = "dgt"


def new_token(kind: str) -> str:
    """A fresh random token ``<kind>_<43 url-safe chars>`` (32 random bytes)."""
    return f"{kind}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """The hex SHA-256 of the token: what the database keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    """The first 8 characters, shown in listings so people can tell tokens apart."""
    return token[:8]


def digest_matches(stored: str, presented: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(stored.encode("ascii"), presented.encode("ascii"))
