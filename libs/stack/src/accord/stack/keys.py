"""Keys `accord up` makes at first start for authn: the Shared Signals signing key (EC
P-256, PEM) and the keys that encrypt MFA secrets at rest. Both files are mode 0600 and
kept across restarts (a new credential key would make stored factors unreadable)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def make_authn_keys(signing_key: Path, credential_keys: Path) -> None:
    """Make whichever of the two key files is missing."""
    if not signing_key.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(signing_key, pem)
    if not credential_keys.exists():
        material = base64.b64encode(secrets.token_bytes(32)).decode()
        _write_private(credential_keys, f"k1:{material}\n".encode())
