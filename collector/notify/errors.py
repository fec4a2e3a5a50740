"""The one exception a delivery attempt raises: :class:`DeliveryError`, retryable or not."""

from __future__ import annotations

__all__ = ["DeliveryError", "scrub"]


class DeliveryError(Exception):
    """A delivery attempt failed. ``str(exc)`` is short and secret-free: it is logged as is.

    ``retryable`` says whether trying again later may succeed (timeouts, refused connections,
    5xx / 4xx-temporary answers); ``retry_after_s`` carries a server's ``Retry-After`` hint.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def scrub(text: str, secrets: tuple[str, ...], limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters, with every non-empty secret masked.

    >>> scrub("auth failed for pw=hunter2\\nbye", ("hunter2", ""))
    'auth failed for pw=***** bye'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "*****")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
