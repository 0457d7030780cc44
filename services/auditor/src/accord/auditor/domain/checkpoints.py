"""Signed checkpoints of the chain head (Ed25519), to keep outside the database.

A checkpoint says "record N of the audit log had hash H at time T", signed. Kept in a
place the database's administrators cannot rewrite (object storage with retention, another
team's system, a ticket), it proves the log up to N: `accord audit verify --checkpoint`
checks that record N still has hash H, which a rewritten or truncated chain cannot fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from accord.auditor.domain.chain import canonical_time

FORMAT = "accord-audit-checkpoint/v1"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the chain head."""

    record_id: int
    hash: str
    created_at: str
    key_id: str
    signature: str
    public_key: str
    format: str = FORMAT

    def to_json(self) -> str:
        """The checkpoint file's text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse a checkpoint file; ValueError if it is not one."""
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"not an {FORMAT} file")
            return cls(
                record_id=int(data["record_id"]),
                hash=str(data["hash"]),
                created_at=str(data["created_at"]),
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
                public_key=str(data["public_key"]),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            raise ValueError(f"not a checkpoint: {error}") from None


def _message(record_id: int, hash_: str, created_at: str) -> bytes:
    return f"{FORMAT}\n{record_id}\n{hash_}\n{created_at}".encode()


def public_pem(key: Ed25519PublicKey) -> str:
    """A public key as PEM text."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, record_id: int, hash_: str, created_at: datetime) -> Checkpoint:
    """A checkpoint of record `record_id` with hash `hash_`."""
    when = canonical_time(created_at)
    signature = key.sign(_message(record_id, hash_, when))
    public = key.public_key()
    return Checkpoint(
        record_id=record_id,
        hash=hash_,
        created_at=when,
        key_id=key_id(public),
        signature=base64.b64encode(signature).decode(),
        public_key=public_pem(public),
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM; ValueError otherwise."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ValueError otherwise."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the checkpoint key must be an Ed25519 public key")
    return key


def new_private_key_pem() -> bytes:
    """A fresh Ed25519 private key, PEM (PKCS#8, unencrypted: protect the file)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def signature_valid(checkpoint: Checkpoint, trusted: Ed25519PublicKey | None = None) -> bool:
    """Whether the signature holds, against a trusted key (else the checkpoint's own)."""
    try:
        key = trusted or load_public_key(checkpoint.public_key)
        signature = base64.b64decode(checkpoint.signature, validate=True)
        key.verify(
            signature, _message(checkpoint.record_id, checkpoint.hash, checkpoint.created_at)
        )
    except (InvalidSignature, ValueError):
        return False
    return True
