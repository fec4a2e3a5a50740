"""The only URL fetcher reports are rendered with: ``data:`` URIs, nothing else.

Threat model: report HTML holds customer-controlled content (names, notes, the logo), and
WeasyPrint fetches every URL a document names (``<img src>``, CSS ``url()``, an SVG's
``<image href>`` or ``<use href>``) with its default fetcher: HTTP(S), FTP and ``file:``.
A customer who gets a URL into a report would make the collector request internal
addresses (SSRF) or copy a local file into a PDF the customer downloads. Reports need no
URL: CSS and charts are inline, the logo is a ``data:`` URI, fonts come from fontconfig
(not from a URL). So this fetcher serves ``data:`` and refuses the rest without opening a
socket or a file; WeasyPrint then leaves the resource out and logs a warning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RefusedURL", "data_only_fetcher"]


class RefusedURL(ValueError):
    """A report named a URL that is not a ``data:`` URI."""


def _refuse(url: str) -> None:
    if not url.lower().startswith("data:"):
        # The URL itself, shortened: a warning in the log, never shown to a customer.
        raise RefusedURL(f"reports fetch nothing but data: URIs; refused {url[:80]!r}")


def data_only_fetcher() -> Any:
    """A WeasyPrint ``url_fetcher`` that serves ``data:`` URIs and refuses every other URL.

    WeasyPrint >= 68 takes a ``URLFetcher`` instance; earlier versions a function.
    """
    from weasyprint import urls  # type: ignore[import-untyped]  # imported only for PDFs

    base = getattr(urls, "URLFetcher", None)
    if base is None:  # WeasyPrint < 68: a function returning a dict

        def fetch(url: str, timeout: int = 10, ssl_context: Any = None) -> Any:
            _refuse(url)
            return urls.default_url_fetcher(url, timeout=timeout, ssl_context=ssl_context)

        return fetch

    class DataOnlyFetcher(base):  # type: ignore[misc,valid-type]
        def fetch(self, url: str, headers: Any = None) -> Any:
            _refuse(url)
            return super().fetch(url, headers)

    return DataOnlyFetcher(allowed_protocols=("data",), allow_redirects=False)
