"""TOTP: secrets, provisioning URIs, tolerance of one step, and no replays."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from accord.authn.domain import totp
from accord.authn.domain.totp import CodeRejected, TotpSecret

#: RFC 6238 appendix B's SHA-1 secret, "12345678901234567890".
RFC_SECRET = TotpSecret(base64.b32encode(b"12345678901234567890").decode())
NOW = 1_800_000_015.0
STEP = int(NOW // 30)


def test_a_new_secret_is_160_random_bits_in_base32() -> None:
    secret = totp.new_secret()

    assert len(secret.value) == 32
    assert len(base64.b32decode(secret.value)) == 20
    assert totp.new_secret() != secret


def test_a_secret_never_shows_itself_in_logs() -> None:
    secret = totp.new_secret()

    assert secret.value not in repr(secret)
    assert secret.value not in str(secret)
    assert secret.value not in f"{secret}"


def test_rfc_6238_vectors() -> None:
    # Appendix B, truncated to 6 digits: T=59 -> 94287082, T=1111111109 -> 07081804.
    assert totp.code_at(RFC_SECRET, totp.time_step(59)) == "287082"
    assert totp.code_at(RFC_SECRET, totp.time_step(1111111109)) == "081804"
    assert totp.verify(RFC_SECRET, "287082", now=59, last_step=None) == 1


def test_the_provisioning_uri_names_issuer_and_user() -> None:
    secret = totp.new_secret()

    uri = totp.provisioning_uri(secret, user_name="ada@example.com", issuer="Acme Corp")

    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert parts.path == "/Acme%20Corp:ada%40example.com"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret.value]
    assert query["issuer"] == ["Acme Corp"]


def test_the_current_code_verifies_and_returns_its_step() -> None:
    secret = totp.new_secret()

    assert totp.verify(secret, totp.code_at(secret, STEP), now=NOW, last_step=None) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_one_step_either_side_is_tolerated(offset: int) -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, STEP + offset)

    assert totp.verify(secret, code, now=NOW, last_step=None) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2, 10])
def test_codes_further_away_are_wrong(offset: int) -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, STEP + offset)
    if code in {totp.code_at(secret, STEP + d) for d in (-1, 0, 1)}:
        pytest.skip("a one-in-a-million collision of codes")

    with pytest.raises(CodeRejected, match="wrong code"):
        totp.verify(secret, code, now=NOW, last_step=None)


def test_a_code_is_refused_the_second_time() -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, STEP)
    used = totp.verify(secret, code, now=NOW, last_step=None)

    with pytest.raises(CodeRejected, match="code already used"):
        totp.verify(secret, code, now=NOW + 5, last_step=used)


def test_an_older_step_is_refused_after_a_newer_one() -> None:
    secret = totp.new_secret()
    newer = totp.verify(secret, totp.code_at(secret, STEP + 1), now=NOW, last_step=None)

    with pytest.raises(CodeRejected, match="code already used"):
        totp.verify(secret, totp.code_at(secret, STEP), now=NOW, last_step=newer)
    # The next step is still good.
    code = totp.code_at(secret, STEP + 2)
    assert totp.verify(secret, code, now=NOW + 30, last_step=newer) == STEP + 2


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "12 345", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
def test_malformed_codes_are_refused_without_checking(code: str) -> None:
    with pytest.raises(CodeRejected, match="a code is 6 digits"):
        totp.verify(totp.new_secret(), code, now=NOW, last_step=None)
    assert totp.matching_steps(totp.new_secret(), code, now=NOW) == []


def test_the_first_step_has_no_negative_neighbour() -> None:
    secret = totp.new_secret()

    assert totp.verify(secret, totp.code_at(secret, 0), now=0.0, last_step=None) == 0
