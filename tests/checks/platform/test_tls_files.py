from __future__ import annotations

import ssl
import subprocess

import pytest

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.platform._common import der_cert_info, pem_blocks
from checks.platform.tls_files import (
    TLS_FILES,
    CertEntry,
    TlsFilesParams,
    TlsFilesSection,
    collect_tls_files,
    evaluate_tls_files,
)
from tests.conftest import FIXTURES, fixture_probe

SSL_DIR = FIXTURES / "hosts" / "sp-certs" / "etc" / "ssl"
DAY = 86400.0


def openssl_enddate(pem: bytes) -> float:
    """Expiry as the openssl command line reads it: an independent decoder to compare with."""
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate"], input=pem, capture_output=True, check=True
    ).stdout.decode()
    return float(ssl.cert_time_to_seconds(out.strip().partition("=")[2]))


APP_NOT_AFTER = openssl_enddate((SSL_DIR / "app.pem").read_bytes())
CA_NOT_AFTER = openssl_enddate(
    (SSL_DIR / "chain.pem").read_bytes().split(b"-----END CERTIFICATE-----\n", 1)[1]
)


def test_test_decode_cert_exists_on_this_python():
    assert callable(ssl._ssl._test_decode_cert)  # type: ignore[attr-defined]


def test_collect_first_cert_of_each_file():
    probe = fixture_probe("sp-certs", now=APP_NOT_AFTER - 10 * DAY)
    files = ["/etc/ssl/app.pem", "/etc/ssl/chain.pem", "/etc/ssl/combo.pem"]
    section = collect_tls_files(probe, TlsFilesParams(files=files))
    assert section == TlsFilesSection(
        APP_NOT_AFTER - 10 * DAY,
        tuple(CertEntry(path, path, 0, "app.example.test", APP_NOT_AFTER) for path in files),
    )


def test_collect_all_certs_of_a_chain():
    section = collect_tls_files(
        fixture_probe("sp-certs"), TlsFilesParams(files=["/etc/ssl/chain.pem"], all_certs=True)
    )
    assert section.certs == (
        CertEntry("/etc/ssl/chain.pem[0]", "/etc/ssl/chain.pem", 0, "app.example.test", APP_NOT_AFTER),
        CertEntry("/etc/ssl/chain.pem[1]", "/etc/ssl/chain.pem", 1, "Example Test CA", CA_NOT_AFTER),
    )


@pytest.mark.parametrize("all_certs", [False, True], ids=["first cert", "all certs"])
@pytest.mark.parametrize(
    ("path", "error"),
    [
        pytest.param("/etc/ssl/missing.pem", "No such file or directory", id="missing"),
        pytest.param("/etc/ssl", "Is a directory", id="directory"),
        pytest.param("/etc/ssl/garbage.pem", "no PEM certificate in the file", id="garbage"),
        pytest.param("/etc/ssl/app.der", "no PEM certificate in the file", id="DER not PEM"),
    ],
)
def test_collect_unreadable_files(path, error, all_certs):
    section = collect_tls_files(fixture_probe("sp-certs"), TlsFilesParams(files=[path], all_certs=all_certs))
    assert section.certs == (CertEntry(path, path, 0, "", None, error),)


@pytest.mark.parametrize("all_certs", [False, True], ids=["first cert", "all certs"])
@pytest.mark.parametrize("name", ["badbase64.pem", "truncated.pem"])
def test_collect_corrupt_pem_is_unreadable_not_a_crash(name, all_certs):
    path = f"/etc/ssl/{name}"
    (entry,) = collect_tls_files(
        fixture_probe("sp-certs"), TlsFilesParams(files=[path], all_certs=all_certs)
    ).certs
    assert entry.not_after is None
    assert entry.error


def test_permission_denied_is_reported(monkeypatch):
    # Tests run as root, who reads everything: make the probe's read fail like EACCES would.
    from checks.probe import Probe

    def deny(self, absolute, limit=0):
        raise PermissionError(13, "Permission denied", absolute)

    monkeypatch.setattr(Probe, "read_bytes", deny)
    section = collect_tls_files(fixture_probe("sp-certs"), TlsFilesParams(files=["/etc/ssl/app.pem"]))
    assert section.certs == (
        CertEntry("/etc/ssl/app.pem", "/etc/ssl/app.pem", 0, "", None, "Permission denied"),
    )


def test_openssl_fallback_when_test_decode_cert_is_gone(monkeypatch):
    monkeypatch.delattr(ssl._ssl, "_test_decode_cert")  # type: ignore[attr-defined]
    section = collect_tls_files(fixture_probe("sp-certs"), TlsFilesParams(files=["/etc/ssl/app.pem"]))
    assert section.certs == (CertEntry("/etc/ssl/app.pem", "/etc/ssl/app.pem", 0, "", APP_NOT_AFTER),)


def test_der_walk_agrees_with_openssl_and_test_decode_cert():
    for der, expected in zip(
        pem_blocks((SSL_DIR / "chain.pem").read_bytes()), (APP_NOT_AFTER, CA_NOT_AFTER), strict=True
    ):
        assert der_cert_info(der).not_after == expected
    decoded = ssl._ssl._test_decode_cert(str(SSL_DIR / "app.pem"))  # type: ignore[attr-defined]
    assert ssl.cert_time_to_seconds(decoded["notAfter"]) == APP_NOT_AFTER


def test_skip_without_files():
    with pytest.raises(SkipCheck, match="no certificate files"):
        collect_tls_files(fixture_probe("sp-certs"), TlsFilesParams())


NOT_AFTER = 2_000_000_000.0  # 2033-05-18 03:33 UTC


def _entry(not_after=NOT_AFTER, error=None):
    return CertEntry("/etc/app.pem", "/etc/app.pem", 0, "app", not_after, error)


def _metric(days):
    return Metric(
        "platform_cert_file_expires_in_days", days, Unit.DAYS, {"path": "/etc/app.pem", "index": "0"}
    )


@pytest.mark.parametrize(
    ("entry", "days_before", "expected"),
    [
        pytest.param(
            _entry(),
            100,
            [
                _metric(100),
                Result(
                    Severity.OK,
                    "OK",
                    "Certificate 'app' expires 2033-05-18 03:33 UTC, in: 100.0 days",
                    "/etc/app.pem",
                ),
            ],
            id="fine",
        ),
        pytest.param(
            _entry(),
            20,
            [
                _metric(20),
                Result(
                    Severity.WARN,
                    "CERT_EXPIRING",
                    "Certificate 'app' expires 2033-05-18 03:33 UTC, in: 20.0 days"
                    " (warn/crit below 30.0 days/7.0 days)",
                    "/etc/app.pem",
                ),
            ],
            id="within a month warns",
        ),
        pytest.param(
            _entry(),
            2,
            [
                _metric(2),
                Result(
                    Severity.CRIT,
                    "CERT_EXPIRING",
                    "Certificate 'app' expires 2033-05-18 03:33 UTC, in: 2.0 days"
                    " (warn/crit below 30.0 days/7.0 days)",
                    "/etc/app.pem",
                ),
            ],
            id="within a week is critical",
        ),
        pytest.param(
            _entry(),
            -3,
            [
                _metric(-3),
                Result(
                    Severity.CRIT,
                    "CERT_EXPIRED",
                    "Certificate 'app' expired 3.0 days ago (2033-05-18 03:33 UTC)",
                    "/etc/app.pem",
                ),
            ],
            id="expired",
        ),
        pytest.param(
            _entry(None, "Permission denied"),
            0,
            [
                Result(
                    Severity.UNKNOWN,
                    "CERT_UNREADABLE",
                    "Cannot read certificate: Permission denied",
                    "/etc/app.pem",
                )
            ],
            id="unreadable",
        ),
    ],
)
def test_evaluate(entry, days_before, expected):
    section = TlsFilesSection(NOT_AFTER - days_before * DAY, (entry,))
    assert list(evaluate_tls_files(TlsFilesParams(files=["/etc/app.pem"]), section, {})) == expected


def test_fixture_end_to_end_and_declaration():
    probe = fixture_probe("sp-certs", now=APP_NOT_AFTER + DAY)
    params = TlsFilesParams(files=["/etc/ssl/chain.pem", "/etc/ssl/nope.pem"], all_certs=True)
    out = list(TLS_FILES.run(probe, params, {}))
    assert [(r.item, r.key) for r in out if isinstance(r, Result)] == [
        ("/etc/ssl/chain.pem[0]", "CERT_EXPIRED"),
        ("/etc/ssl/chain.pem[1]", "OK"),
        ("/etc/ssl/nope.pem", "CERT_UNREADABLE"),
    ]
    assert {m.name for m in out if isinstance(m, Metric)} == TLS_FILES.metric_names
