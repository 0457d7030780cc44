"""The transmitter's signing key: an EC P-256 PEM file, its RFC 7638 thumbprint as `kid`,
and its public half as the JWKS receivers verify Accord's SETs with.

The private key never leaves this object: no log line, no repr shows it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.authn.domain.set_tokens import sign_set

log = logging.getLogger(__name__)


class SigningKeyError(Exception):
    """The key file is missing, unreadable or not an EC P-256 private key."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public key as a JWK (kty, crv, x, y), without kid or use."""
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an EC key: its required members, sorted."""
    canonical = json.dumps(
        {name: jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":")
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class SigningKey:
    """Signs SETs (ES256, `typ: secevent+jwt`, `kid` = thumbprint)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise SigningKeyError("the SSF signing key must be on curve P-256")
        self._private_key = private_key
        self._public = public_jwk(private_key.public_key())
        self.kid = thumbprint(self._public)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The claims as a signed SET."""
        return sign_set(claims, self._private_key, self.kid)

    def jwks(self) -> dict[str, Any]:
        """The JWKS receivers fetch from `jwks_uri`."""
        return {"keys": [{**self._public, "kid": self.kid, "use": "sig", "alg": "ES256"}]}


def load_signing_key(path: Path | None) -> SigningKey | None:
    """The key in a PEM file; None (and a clear log line) when no file is configured."""
    if path is None:
        log.warning(
            "Shared Signals transmitter disabled: ACCORD_SSF_SIGNING_KEY_FILE is not set,"
            " so no Security Event Token is signed or queued"
        )
        return None
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        # The error names the file, never its content.
        raise SigningKeyError(
            f"cannot load the SSF signing key from {path}: {type(error).__name__}"
        ) from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"{path} does not hold an EC private key")
    key = SigningKey(loaded)
    log.info("Shared Signals transmitter signing key loaded", extra={"kid": key.kid})
    return key


def generate_signing_key(path: Path) -> SigningKey:
    """Make a new P-256 key, write it as PEM (readable by its owner only), return it."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return SigningKey(private_key)


def empty_jwks() -> dict[str, Any]:
    """The JWKS of a transmitter without a key."""
    return {"keys": []}
