"""What the platform checks share: systemd detection and certificate decoding without ``cryptography``.

Certificates are read three ways, all stdlib or system tools:

- :func:`decode_cert_file`: ``ssl._ssl._test_decode_cert`` (CPython's own test helper,
  present from 3.4 through 3.13) on the first certificate of a PEM file;
- :func:`openssl_not_after`: ``openssl x509 -enddate -noout`` when that helper is gone;
- :func:`der_cert_info`: a small DER walk to the validity and subject of one certificate,
  for the certificates a TLS handshake returns and for every block of a PEM bundle.

>>> [time.strftime("%Y-%m-%d", time.gmtime(_der_time(0x17, t))) for t in (b"491231235959Z", b"500101000000Z")]
['2049-12-31', '1950-01-01']
>>> der_cert_info(b"\x30\x03\x02\x01\x01")
Traceback (most recent call last):
ValueError: not an X.509 certificate
"""

from __future__ import annotations

import binascii
import calendar
import re
import time
from dataclasses import dataclass
from typing import Any

from checks.api import Levels, Result, Severity, SkipCheck, check_levels
from checks.probe import Probe

__all__ = [
    "CertInfo",
    "decode_cert_file",
    "der_cert_info",
    "expiry_result",
    "openssl_not_after",
    "pem_blocks",
    "require_systemd",
]

SYSTEMD_RUNTIME_DIR = "/run/systemd/system"
SECONDS_PER_DAY = 86400.0

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
_CN_OID = b"\x55\x04\x03"  # 2.5.4.3 commonName
_STRING_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}


def require_systemd(probe: Probe) -> None:
    """Raise :class:`SkipCheck` unless the host was booted with systemd (sd_booted(3))."""
    if not probe.exists(SYSTEMD_RUNTIME_DIR):
        raise SkipCheck(f"not booted with systemd ({SYSTEMD_RUNTIME_DIR} is absent)")


@dataclass(frozen=True, slots=True)
class CertInfo:
    not_after: float
    """Expiry as Unix seconds."""
    subject: str
    """The subject's common name (empty when it has none)."""


def pem_blocks(data: bytes) -> list[bytes]:
    """The DER bytes of every ``CERTIFICATE`` block in PEM text (keys and other blocks skipped)."""
    try:
        return [binascii.a2b_base64(b"".join(block.split())) for block in _PEM_CERT.findall(data)]
    except binascii.Error as exc:
        raise ValueError(f"bad base64 in PEM certificate: {exc}") from None


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    if pos + 2 > end:
        raise ValueError("truncated DER element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        element = _tlv(data, pos, end)
        out.append(element)
        pos = element[2]
    return out


def _der_time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; RFC 5280: YY >= 50 means 19YY
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"validity time has tag {tag:#x}, expected UTCTime or GeneralizedTime")
    if not text.endswith("Z") or len(text) != 15:
        raise ValueError(f"unsupported certificate time {raw!r}")
    return float(calendar.timegm(time.strptime(text[:14], "%Y%m%d%H%M%S")))


def _common_name(data: bytes, start: int, end: int) -> str:
    for _, set_start, set_end in _children(data, start, end):
        for _, seq_start, seq_end in _children(data, set_start, set_end):
            parts = _children(data, seq_start, seq_end)
            if len(parts) == 2 and data[parts[0][1] : parts[0][2]] == _CN_OID:
                tag, value_start, value_end = parts[1]
                return data[value_start:value_end].decode(_STRING_TAGS.get(tag, "latin-1"), errors="replace")
    return ""


def der_cert_info(der: bytes) -> CertInfo:
    """Expiry and subject CN of one DER certificate (X.509 v1 or v3); ``ValueError`` when malformed."""
    try:
        tag, start, end = _tlv(der, 0, len(der))
        if tag != 0x30:
            raise ValueError("not a DER SEQUENCE")
        tbs_tag, tbs_start, tbs_end = _children(der, start, end)[0]
        if tbs_tag != 0x30:
            raise ValueError("not an X.509 certificate")
        fields = _children(der, tbs_start, tbs_end)
        if fields and fields[0][0] == 0xA0:  # explicit [0] version
            fields = fields[1:]
        # serial, signature algorithm, issuer, validity, subject
        if len(fields) < 5 or fields[3][0] != 0x30:
            raise ValueError("not an X.509 certificate")
        validity = _children(der, fields[3][1], fields[3][2])
        if len(validity) != 2:
            raise ValueError("validity is not two times")
        not_tag, not_start, not_end = validity[1]
        subject = _common_name(der, fields[4][1], fields[4][2])
        return CertInfo(_der_time(not_tag, der[not_start:not_end]), subject)
    except (IndexError, UnicodeDecodeError) as exc:  # malformed input, reported as such
        raise ValueError(f"malformed certificate: {exc}") from None


def decode_cert_file(real_path: str) -> CertInfo:
    """First certificate of a PEM file through CPython's ``_test_decode_cert``.

    Raises ``AttributeError`` when this Python lacks the helper (use
    :func:`openssl_not_after`), ``ssl.SSLError`` when the file holds no readable
    certificate, ``OSError`` when it cannot be read.
    """
    import ssl  # lazily: only hosts that watch certificates pay for it

    decoded: dict[str, Any] = ssl._ssl._test_decode_cert(real_path)  # type: ignore[attr-defined]
    subject = ""
    for rdn in decoded.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                subject = value
    return CertInfo(float(ssl.cert_time_to_seconds(decoded["notAfter"])), subject)


def openssl_not_after(probe: Probe, real_path: str, timeout_s: float = 10.0) -> float:
    """Expiry of a PEM file's first certificate from ``openssl x509 -enddate -noout``."""
    import ssl

    result = probe.run(["openssl", "x509", "-enddate", "-noout", "-in", real_path], timeout_s=timeout_s)
    line = result.stdout.strip()
    if result.returncode != 0 or not line.startswith("notAfter="):
        raise ValueError(f"openssl x509 could not read {real_path}: {result.stderr.strip()[:200] or line!r}")
    return float(ssl.cert_time_to_seconds(line.partition("=")[2]))


def expiry_result(
    not_after: float, now: float, levels: Levels, item: str, subject: str
) -> tuple[float, Result]:
    """Days left and the verdict for one certificate (used by tls_files and tls_endpoints)."""
    days = (not_after - now) / SECONDS_PER_DAY
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
    who = f"Certificate {subject!r}" if subject else "Certificate"
    if days <= 0:
        return days, Result(
            Severity.CRIT, "CERT_EXPIRED", f"{who} expired {-days:.1f} days ago ({date})", item
        )
    result = check_levels(
        days,
        key="CERT_EXPIRING",
        label=f"{who} expires {date}, in",
        levels_lower=levels,
        render=lambda d: f"{d:.1f} days",
        item=item,
    )
    return days, result
