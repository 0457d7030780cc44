"""The shared signing scheme (X-Accord-Signature), Retry-After and the outbound URL guard."""

from __future__ import annotations

import email.utils

import pytest

from accord.runtime.retry_after import retry_after_seconds
from accord.runtime.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    is_fresh,
    sign,
    signed_headers,
    verify_signature,
)
from accord.runtime.url_guard import ForbiddenAddress, check_url

SECRET = b"whsec_s3cr3t"
BODY = b'{"operation":"find","user_id":"u-1","user_name":"ada"}'
NOW = 1700000000.0


def test_signed_headers_verify_and_match_the_known_vector() -> None:
    headers = signed_headers(SECRET, BODY, now=NOW + 0.9)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    # printf '%s' '1700000000.<body>' | openssl dgst -sha256 -hmac whsec_s3cr3t
    assert (
        headers[SIGNATURE_HEADER]
        == sign(SECRET, "1700000000", BODY)
        == ("v1=55fd92bac17809f3ba3c83408b6a07c1113f3859a88e765f01dd77c7bbde461a")
    )
    assert verify_signature(SECRET, "1700000000", BODY, headers[SIGNATURE_HEADER], now=NOW)
    assert not verify_signature(
        SECRET, "1700000000", BODY + b" ", headers[SIGNATURE_HEADER], now=NOW
    )


@pytest.mark.parametrize(
    ("timestamp", "fresh"),
    [
        ("1700000000", True),
        ("1700000300", True),
        ("1699999699", False),
        ("17e8", False),
        ("", False),
    ],
)
def test_a_timestamp_is_fresh_within_the_tolerance_either_way(timestamp: str, fresh: bool) -> None:
    assert is_fresh(timestamp, now=NOW, tolerance_s=300) is fresh


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds(" 7 ", NOW) == 7.0
    assert retry_after_seconds(email.utils.formatdate(NOW + 30, usegmt=True), NOW) == 30.0
    assert retry_after_seconds(email.utils.formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    assert retry_after_seconds("", NOW) is None
    assert retry_after_seconds("soon", NOW) is None


def test_the_url_guard_names_the_callers_opt_in() -> None:
    with pytest.raises(ForbiddenAddress, match="say please"):
        check_url("http://169.254.169.254/", allow_link_local=False, opt_in="say please")
    check_url("http://169.254.169.254/", allow_link_local=True, opt_in="say please")
