"""OpenSSH public key types that remote sessions accept (agent and collector alike).

Stdlib only: the agent imports it on its light paths.

>>> "ssh-ed25519" in KEY_TYPES, "ssh-dss" in KEY_TYPES
(True, False)
"""

from __future__ import annotations

from typing import Final

__all__ = ["KEY_TYPES"]

KEY_TYPES: Final = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
"""Key types an engineer's session key may have (no DSA: OpenSSH dropped it)."""
