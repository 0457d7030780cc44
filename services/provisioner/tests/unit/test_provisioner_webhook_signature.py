"""Signing and verifying webhook requests (X-Accord-Signature), without a network."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from accord.provisioner.adapters.webhook import (
    WebhookConnector,
    WebhookSettings,
    idempotency_key,
    sign,
    verify_signature,
)

SECRET = b"whsec_s3cr3t"
TIMESTAMP = "1700000000"
BODY = b'{"operation":"find","user_id":"u-1","user_name":"ada"}'
# Computed independently: printf '%s' '1700000000.<body>' | openssl dgst -sha256 -hmac whsec_s3cr3t
VECTOR = "v1=55fd92bac17809f3ba3c83408b6a07c1113f3859a88e765f01dd77c7bbde461a"
NOW = 1700000000.0


def test_signature_matches_a_known_vector() -> None:
    assert sign(SECRET, TIMESTAMP, BODY) == VECTOR


def test_idempotency_key_matches_a_known_vector() -> None:
    # printf 'find\nu-1\n<body>' | openssl dgst -sha256
    assert idempotency_key("find", "u-1", BODY) == (
        "d6793949e82462c401470cac278e153e62cd599afc56d8271fbad41865383aed"
    )
    assert idempotency_key("delete", "u-1", BODY) != idempotency_key("find", "u-1", BODY)


def test_a_good_signature_within_the_tolerance_is_accepted() -> None:
    assert verify_signature(SECRET, TIMESTAMP, BODY, VECTOR, now=NOW)
    assert verify_signature(SECRET, TIMESTAMP, BODY, VECTOR, now=NOW + 300)
    assert verify_signature(SECRET, TIMESTAMP, BODY, VECTOR, now=NOW - 300)


@pytest.mark.parametrize("skew", [301.0, -301.0, 86400.0])
def test_a_stale_or_future_timestamp_is_refused(skew: float) -> None:
    assert not verify_signature(SECRET, TIMESTAMP, BODY, VECTOR, now=NOW + skew)


def test_the_tolerance_can_be_narrowed() -> None:
    assert verify_signature(SECRET, TIMESTAMP, BODY, VECTOR, now=NOW + 5, tolerance_s=10)
    assert not verify_signature(SECRET, TIMESTAMP, BODY, VECTOR, now=NOW + 11, tolerance_s=10)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature"),
    [
        pytest.param(b"another-secret", TIMESTAMP, BODY, VECTOR, id="wrong secret"),
        pytest.param(b"", TIMESTAMP, BODY, sign(b"", TIMESTAMP, BODY), id="empty secret"),
        pytest.param(SECRET, TIMESTAMP, BODY + b" ", VECTOR, id="body changed"),
        pytest.param(SECRET, "1700000001", BODY, VECTOR, id="timestamp changed"),
        pytest.param(SECRET, TIMESTAMP, BODY, VECTOR.upper(), id="not lower-case hex"),
        pytest.param(SECRET, TIMESTAMP, BODY, VECTOR.removeprefix("v1="), id="no scheme"),
        pytest.param(SECRET, TIMESTAMP, BODY, "v0=" + VECTOR[3:], id="other scheme"),
        pytest.param(SECRET, TIMESTAMP, BODY, VECTOR[:-1], id="truncated"),
        pytest.param(SECRET, TIMESTAMP, BODY, "", id="empty signature"),
        pytest.param(SECRET, TIMESTAMP, BODY, "v1=ü" + VECTOR[4:], id="not ascii"),
        pytest.param(SECRET, "", BODY, VECTOR, id="no timestamp"),
        pytest.param(SECRET, "1.7e9", BODY, VECTOR, id="timestamp not an integer"),
        pytest.param(SECRET, "-1700000000", BODY, VECTOR, id="negative timestamp"),
        pytest.param(SECRET, "\uff11\uff17\uff10\uff10", BODY, VECTOR, id="non-ascii digits"),
    ],
)
def test_anything_else_is_refused(
    secret: bytes, timestamp: str, body: bytes, signature: str
) -> None:
    assert not verify_signature(secret, timestamp, body, signature, now=NOW)


def test_one_matching_signature_of_several_suffices() -> None:
    rotated = sign(b"old-secret", TIMESTAMP, BODY)
    assert verify_signature(SECRET, TIMESTAMP, BODY, f"{rotated}, {VECTOR}", now=NOW)
    assert not verify_signature(SECRET, TIMESTAMP, BODY, f"{rotated},{rotated}", now=NOW)


def test_a_clock_that_is_not_a_number_is_refused() -> None:
    assert not verify_signature(SECRET, TIMESTAMP, BODY, VECTOR, now=float("nan"))


@pytest.mark.parametrize(
    ("url", "secret", "timeout_s", "problem"),
    [
        ("ftp://example.test/hook", "s", 10.0, "url"),
        ("/hook", "s", 10.0, "url"),
        ("https://example.test/hook", "", 10.0, "secret"),
        ("https://example.test/hook", "s", 0.0, "timeout"),
        ("https://example.test/hook", "s", float("inf"), "timeout"),
    ],
)
def test_settings_are_validated(url: str, secret: str, timeout_s: float, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        WebhookSettings(url, SecretStr(secret), timeout_s)


async def test_the_secret_is_in_no_repr() -> None:
    secret = "whsec_do-not-print-me"
    settings = WebhookSettings("https://example.test/hook", SecretStr(secret))
    connector = WebhookConnector("hooked", settings)
    try:
        assert secret not in repr(settings)
        assert secret not in str(settings)
        assert secret not in repr(connector)
    finally:
        await connector.close()
