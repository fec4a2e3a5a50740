"""platform.tls_files: days until the certificates in configured PEM files expire.

No ``cryptography`` package (too heavy for the agent): the first certificate of a file
is decoded by CPython's ``ssl._ssl._test_decode_cert`` (falling back to
``openssl x509 -enddate -noout`` on a Python without it); with ``all_certs`` every
``CERTIFICATE`` block of the file (a chain, a CA bundle) is decoded by a small DER walk
(``checks.platform._common.der_cert_info``). Skipped when no files are configured.

Sample of what :func:`collect_tls_files` returns::

    TlsFilesSection(ts=1764093600.0, certs=(
        CertEntry(item='/etc/ssl/certs/app.pem', path='/etc/ssl/certs/app.pem', index=0,
                  subject='app.example.com', not_after=1769990400.0, error=None),
        CertEntry(item='/etc/ssl/private/gone.pem', path='/etc/ssl/private/gone.pem', index=0,
                  subject='', not_after=None, error='No such file or directory'),
    ))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
)
from checks.platform._common import (
    decode_cert_file,
    der_cert_info,
    expiry_result,
    openssl_not_after,
    pem_blocks,
)
from checks.probe import Probe

PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class CertEntry:
    item: str
    """The path, or ``path[index]`` when every certificate of the file is checked."""
    path: str
    index: int
    subject: str
    not_after: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TlsFilesSection:
    ts: float
    certs: tuple[CertEntry, ...]


class TlsFilesParams(CheckParams):
    files: list[str] = Field(default_factory=list)
    """Absolute paths of PEM files holding certificates."""
    all_certs: bool = False
    """Check every certificate of each file (chains, bundles), not just the first."""
    levels_days_left: Levels = (30.0, 7.0)
    """(warn, crit) lower levels on the days until expiry."""
    openssl_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of the ``openssl`` fallback."""


def _first_cert(probe: Probe, path: str, timeout_s: float) -> tuple[str, float]:
    """(subject, not_after) of the first certificate; ``_test_decode_cert`` first, openssl if it is gone."""
    import ssl

    real = str(probe.path(path))
    try:
        info = decode_cert_file(real)
    except AttributeError:  # a Python without the private helper: the system openssl decodes
        return "", openssl_not_after(probe, real, timeout_s)
    except ssl.SSLError as exc:
        raise ValueError(f"no readable certificate ({exc.args[-1]})") from None
    return info.subject, info.not_after


def _file_entries(probe: Probe, path: str, params: TlsFilesParams) -> list[CertEntry]:
    try:
        data = probe.read_bytes(path)  # the precise reason when it cannot be read (decoders say less)
    except OSError as exc:
        return [CertEntry(path, path, 0, "", None, exc.strerror or type(exc).__name__)]
    if PEM_MARKER not in data:
        return [CertEntry(path, path, 0, "", None, "no PEM certificate in the file")]
    if not params.all_certs:
        try:
            subject, not_after = _first_cert(probe, path, params.openssl_timeout_s)
        except ValueError as exc:
            return [CertEntry(path, path, 0, "", None, str(exc))]
        return [CertEntry(path, path, 0, subject, not_after)]
    entries = []
    try:
        blocks = pem_blocks(data)
    except ValueError as exc:
        return [CertEntry(path, path, 0, "", None, str(exc))]
    for index, der in enumerate(blocks):
        item = f"{path}[{index}]"
        try:
            info = der_cert_info(der)
        except ValueError as exc:
            entries.append(CertEntry(item, path, index, "", None, str(exc)))
        else:
            entries.append(CertEntry(item, path, index, info.subject, info.not_after))
    return entries


def collect_tls_files(probe: Probe, params: TlsFilesParams) -> TlsFilesSection:
    if not params.files:
        raise SkipCheck("no certificate files configured (params.files)")
    certs = [entry for path in params.files for entry in _file_entries(probe, path, params)]
    return TlsFilesSection(probe.now(), tuple(certs))


def evaluate_tls_files(
    params: TlsFilesParams, section: TlsFilesSection, store: ValueStore
) -> Iterator[Result | Metric]:
    for cert in section.certs:
        if cert.not_after is None:
            yield Result(
                Severity.UNKNOWN, "CERT_UNREADABLE", f"Cannot read certificate: {cert.error}", cert.item
            )
            continue
        days, result = expiry_result(
            cert.not_after, section.ts, params.levels_days_left, cert.item, cert.subject
        )
        yield Metric(
            "platform_cert_file_expires_in_days",
            days,
            Unit.DAYS,
            {"path": cert.path, "index": str(cert.index)},
        )
        yield result


TLS_FILES = Check(
    name="platform.tls_files",
    layer=Layer.PLATFORM,
    summary="Expiry of certificates in configured PEM files",
    collect=collect_tls_files,
    evaluate=evaluate_tls_files,
    params=TlsFilesParams,
    keys=("CERT_EXPIRING", "CERT_EXPIRED", "CERT_UNREADABLE"),
    metrics=(
        MetricSpec(
            "platform_cert_file_expires_in_days",
            Unit.DAYS,
            "Days until the certificate expires (negative once expired)",
            Direction.DOWN_IS_BAD,
            labels=("path", "index"),
        ),
    ),
    interval_s=3600,
    timeout_s=30,
)
