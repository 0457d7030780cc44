"""Factor secrets sealed at rest: AES-256-GCM under a keyring that allows rotation.

A keyring is configured as `id:base64(32 bytes)` entries, comma-separated. The first key
seals; every key opens, so a new key is put first and the old one kept until every secret
sealed with it is gone. The associated data binds a ciphertext to the row it belongs to
(user and credential), so a sealed secret copied into another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
#: Changing this makes every sealed secret unreadable: it is part of the format.
_CONTEXT = b"accord.authn.factor-secret.v1"


class KeyringError(ValueError):
    """The configured keys are unusable; the message names the entry, never the key."""


class UnsealError(Exception):
    """A sealed secret does not open: unknown key id, tampered, or bound to another row."""


@dataclass(frozen=True)
class Sealed:
    """A sealed secret as stored: the id of the key that sealed it, and nonce + ciphertext."""

    key_id: str
    blob: bytes

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, blob=<{len(self.blob)} bytes>)"


def _associated_data(user_id: str, credential_id: str, key_id: str) -> bytes:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") never bind alike.
    parts = [_CONTEXT, key_id.encode(), user_id.encode(), credential_id.encode()]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


class Keyring:
    """Keys by id; the first seals, all open."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyringError("no credential keys configured")
        seen: set[str] = set()
        for position, (key_id, key) in enumerate(keys, start=1):
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(
                    f"credential key {position}: its id must be 1-32 of A-Z a-z 0-9 . _ -"
                )
            if key_id in seen:
                raise KeyringError(f"credential key id {key_id!r} appears more than once")
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"credential key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
            seen.add(key_id)
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        # Subkeys for other purposes (HMAC), so a key never serves two algorithms.
        self._subkeys = {
            key_id: hmac.new(key, b"accord.authn.subkey.v1", hashlib.sha256).digest()
            for key_id, key in keys
        }
        self.primary_id = keys[0][0]
        """The id of the key that seals."""

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """A keyring from `id:base64key,id2:base64key2` (standard or URL-safe base64)."""
        entries = [e.strip() for e in text.split(",")]
        if not any(entries):
            raise KeyringError("no credential keys configured")
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(entries, start=1):
            key_id, separator, encoded = entry.partition(":")
            if not separator or not key_id.strip() or not encoded.strip():
                raise KeyringError(f"credential key {position} is not of the form id:base64key")
            keys.append((key_id.strip(), _decode(encoded.strip(), key_id.strip())))
        return cls(keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, the sealing one first."""
        return tuple(self._keys)

    def subkeys(self, purpose: str) -> dict[str, bytes]:
        """A 32-byte key per key id for `purpose` (HMAC-SHA256 of the purpose under a
        subkey of each key): other secrets at rest are keyed from the same keyring."""
        return {
            key_id: hmac.new(key, purpose.encode(), hashlib.sha256).digest()
            for key_id, key in self._subkeys.items()
        }

    def seal(self, plaintext: bytes, *, user_id: str, credential_id: str) -> Sealed:
        """Encrypt under the first key with a fresh random nonce, bound to the row."""
        key_id = self.primary_id
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(user_id, credential_id, key_id)
        return Sealed(key_id, nonce + self._keys[key_id].encrypt(nonce, plaintext, aad))

    def open(self, sealed: Sealed, *, user_id: str, credential_id: str) -> bytes:
        """Decrypt a sealed secret of this row; UnsealError if it does not open."""
        cipher = self._keys.get(sealed.key_id)
        if cipher is None:
            raise UnsealError(f"credential key {sealed.key_id!r} is not configured")
        nonce, body = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        if len(nonce) != NONCE_BYTES or not body:
            raise UnsealError("the sealed secret is truncated")
        aad = _associated_data(user_id, credential_id, sealed.key_id)
        try:
            return cipher.decrypt(nonce, body, aad)
        except InvalidTag:
            raise UnsealError(
                "the sealed secret does not open: tampered, or sealed for another credential"
            ) from None

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r})"


def _decode(encoded: str, key_id: str) -> bytes:
    padded = encoded + "=" * (-len(encoded) % 4)
    alphabet = b"-_" if ("-" in encoded or "_" in encoded) else None
    try:
        return base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"credential key {key_id!r} is not valid base64") from None


def generate_key(key_id: str | None = None) -> str:
    """A new keyring entry `id:base64(32 random bytes)`; the id defaults to a random one."""
    chosen = key_id or f"k{secrets.token_hex(4)}"
    if not _KEY_ID.fullmatch(chosen):
        raise KeyringError("a key id must be 1-32 of A-Z a-z 0-9 . _ -")
    return f"{chosen}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"
