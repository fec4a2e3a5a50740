from __future__ import annotations

import hashlib
import hmac

import pytest

from collector.notify import sign, verify

BODY = b'{"version":1}'
SECRET = b"0123456789abcdef"


def test_signature_is_hmac_sha256_over_timestamp_and_body():
    header = sign(SECRET, BODY, 1_700_000_000)
    expected = hmac.new(SECRET, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("secret", "body", "header", "now", "ok"),
    [
        pytest.param(SECRET, BODY, sign(SECRET, BODY, 1000), 1000, True, id="valid"),
        pytest.param(SECRET, BODY, sign(SECRET, BODY, 1000), 1299, True, id="within tolerance"),
        pytest.param(SECRET, BODY, sign(SECRET, BODY, 1000), 1301, False, id="too old: replay"),
        pytest.param(SECRET, BODY, sign(SECRET, BODY, 1000), 699, False, id="from the future"),
        pytest.param(b"other-secret-123", BODY, sign(SECRET, BODY, 1000), 1000, False, id="wrong secret"),
        pytest.param(SECRET, BODY + b" ", sign(SECRET, BODY, 1000), 1000, False, id="tampered body"),
        pytest.param(SECRET, BODY, "", 1000, False, id="empty header"),
        pytest.param(SECRET, BODY, "t=abc,v1=00", 1000, False, id="bad timestamp"),
        pytest.param(SECRET, BODY, "t=1000", 1000, False, id="no mac"),
        pytest.param(SECRET, BODY, "garbage", 1000, False, id="garbage"),
    ],
)
def test_verify(secret, body, header, now, ok):
    assert verify(secret, body, header, now=now) is ok
