"""Factor secrets sealed with AES-256-GCM: rotation, row binding, clear configuration errors."""

from __future__ import annotations

import base64

import pytest

from accord.authn.domain.sealing import (
    KEY_BYTES,
    NONCE_BYTES,
    Keyring,
    KeyringError,
    Sealed,
    UnsealError,
    generate_key,
)

KEY_1 = base64.b64encode(bytes(range(32))).decode()
KEY_2 = base64.b64encode(bytes(range(100, 132))).decode()
SECRET = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
ROW = {"user_id": "ada", "credential_id": "mfa-1"}


def test_a_sealed_secret_opens_for_its_row_and_carries_the_key_id() -> None:
    ring = Keyring.parse(f"k1:{KEY_1}")

    sealed = ring.seal(SECRET, **ROW)

    assert sealed.key_id == "k1"
    assert len(sealed.blob) == NONCE_BYTES + len(SECRET) + 16
    assert SECRET not in sealed.blob
    assert ring.open(sealed, **ROW) == SECRET


def test_every_seal_uses_a_fresh_nonce() -> None:
    ring = Keyring.parse(f"k1:{KEY_1}")

    first, second = ring.seal(SECRET, **ROW), ring.seal(SECRET, **ROW)

    assert first.blob[:NONCE_BYTES] != second.blob[:NONCE_BYTES]
    assert first.blob != second.blob


@pytest.mark.parametrize(
    "other",
    [{"user_id": "eve", "credential_id": "mfa-1"}, {"user_id": "ada", "credential_id": "x"}],
)
def test_a_secret_copied_to_another_row_does_not_open(other: dict[str, str]) -> None:
    ring = Keyring.parse(f"k1:{KEY_1}")
    sealed = ring.seal(SECRET, **ROW)

    with pytest.raises(UnsealError, match="another credential"):
        ring.open(sealed, **other)


def test_the_binding_is_unambiguous() -> None:
    ring = Keyring.parse(f"k1:{KEY_1}")
    sealed = ring.seal(SECRET, user_id="ab", credential_id="c")

    with pytest.raises(UnsealError):
        ring.open(sealed, user_id="a", credential_id="bc")


def test_a_tampered_secret_does_not_open() -> None:
    ring = Keyring.parse(f"k1:{KEY_1}")
    sealed = ring.seal(SECRET, **ROW)
    flipped = bytearray(sealed.blob)
    flipped[-1] ^= 1

    with pytest.raises(UnsealError):
        ring.open(Sealed("k1", bytes(flipped)), **ROW)
    with pytest.raises(UnsealError, match="truncated"):
        ring.open(Sealed("k1", sealed.blob[:NONCE_BYTES]), **ROW)


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old = Keyring.parse(f"k1:{KEY_1}")
    sealed_before = old.seal(SECRET, **ROW)
    rotated = Keyring.parse(f"k2:{KEY_2}, k1:{KEY_1}")

    sealed_after = rotated.seal(SECRET, **ROW)

    assert rotated.key_ids == ("k2", "k1")
    assert sealed_after.key_id == "k2"
    assert rotated.open(sealed_before, **ROW) == SECRET
    assert rotated.open(sealed_after, **ROW) == SECRET
    with pytest.raises(UnsealError, match="'k2' is not configured"):
        old.open(sealed_after, **ROW)


def test_a_key_id_does_not_choose_another_key() -> None:
    ring = Keyring.parse(f"k2:{KEY_2},k1:{KEY_1}")
    sealed = ring.seal(SECRET, **ROW)

    with pytest.raises(UnsealError):
        ring.open(Sealed("k1", sealed.blob), **ROW)


def test_url_safe_and_unpadded_base64_are_accepted() -> None:
    raw = bytes([0xFB] * 32)
    url_safe = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    ring = Keyring.parse(f"u:{url_safe}")

    assert ring.open(ring.seal(SECRET, **ROW), **ROW) == SECRET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no credential keys"),
        (" , ", "no credential keys"),
        ("k1", "credential key 1 is not of the form id:base64key"),
        (f"k1:{KEY_1},:{KEY_2}", "credential key 2 is not of the form"),
        ("k1:not base64!", "credential key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(bytes(16)).decode()}", "'k1' is 16 bytes; AES-256 needs 32"),
        (f"k1:{KEY_1},k1:{KEY_2}", "'k1' appears more than once"),
        (f"bad id:{KEY_1}", "credential key 1: its id must be"),
    ],
)
def test_configuration_errors_name_the_entry_never_the_key(text: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message) as caught:
        Keyring.parse(text)

    for key in (KEY_1, KEY_2):
        assert key not in str(caught.value)


def test_representations_hide_the_material() -> None:
    ring = Keyring.parse(f"k1:{KEY_1}")
    sealed = ring.seal(SECRET, **ROW)

    assert KEY_1 not in repr(ring)
    assert "k1" in repr(ring)
    assert repr(sealed) == f"Sealed(key_id='k1', blob=<{len(sealed.blob)} bytes>)"


def test_generate_key_makes_a_usable_entry() -> None:
    entry = generate_key("2026-01")
    key_id, _, encoded = entry.partition(":")

    ring = Keyring.parse(entry)

    assert key_id == "2026-01"
    assert len(base64.b64decode(encoded)) == KEY_BYTES
    assert ring.open(ring.seal(SECRET, **ROW), **ROW) == SECRET
    assert generate_key() != generate_key()
    assert Keyring.parse(generate_key()).primary_id.startswith("k")
    with pytest.raises(KeyringError):
        generate_key("no spaces")
