"""A software WebAuthn authenticator and client: what a browser and a security key would
send, without either.

ES256 keys, "none" attestation, a sign count per credential. `create` answers
`navigator.credentials.create()` options, `get` answers `navigator.credentials.get()`
options; both return the JSON a browser posts (base64url fields, as py_webauthn parses).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40
ES256 = -7


class AuthenticatorRefused(Exception):
    """What a browser would reject with a DOMException (InvalidStateError, NotAllowedError)."""


def b64url(data: bytes) -> str:
    """Base64url without padding, as WebAuthn's JSON uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """The bytes of an unpadded base64url text."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class _Credential:
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int


class SoftwareAuthenticator:
    """One authenticator holding any number of credentials.

    `count_step` is how much the sign count grows per assertion (0: an authenticator that
    does not count, as many passkeys do); `user_verified` sets the UV flag.
    """

    def __init__(
        self, *, count_step: int = 1, user_verified: bool = True, aaguid: bytes = bytes(16)
    ) -> None:
        self.count_step = count_step
        self.user_verified = user_verified
        self.aaguid = aaguid
        self.credentials: dict[bytes, _Credential] = {}

    def clone(self) -> SoftwareAuthenticator:
        """A copy holding the same keys and counters: what an attacker's clone would be."""
        twin = SoftwareAuthenticator(
            count_step=self.count_step, user_verified=self.user_verified, aaguid=self.aaguid
        )
        twin.credentials = {cid: copy.copy(c) for cid, c in self.credentials.items()}
        return twin

    def sign_count(self, credential_id: bytes) -> int:
        """The current sign count of one credential."""
        return self.credentials[credential_id].sign_count

    def create(self, options_json: str | Mapping[str, Any], origin: str) -> dict[str, Any]:
        """Answer registration options as the browser would (a RegistrationResponseJSON)."""
        options = _load(options_json)
        rp_id = options["rp"].get("id") or _host(origin)
        algorithms = [p.get("alg") for p in options.get("pubKeyCredParams", [])]
        if ES256 not in algorithms:
            raise AuthenticatorRefused("NotSupportedError: ES256 is not among the algorithms")
        excluded = {unb64url(c["id"]) for c in options.get("excludeCredentials", [])}
        if excluded & set(self.credentials):
            raise AuthenticatorRefused("InvalidStateError: a credential here is excluded")
        credential_id = os.urandom(32)
        key = ec.generate_private_key(ec.SECP256R1())
        credential = _Credential(key, rp_id, unb64url(options["user"]["id"]), 0)
        self.credentials[credential_id] = credential
        attested = (
            self.aaguid
            + len(credential_id).to_bytes(2, "big")
            + credential_id
            + cbor2.dumps(_cose_key(key))
        )
        auth_data = self._auth_data(credential, AT) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = _client_data("webauthn.create", options["challenge"], origin)
        return _public_key_credential(
            credential_id,
            {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["usb"],
            },
        )

    def get(self, options_json: str | Mapping[str, Any], origin: str) -> dict[str, Any]:
        """Answer authentication options as the browser would (an AuthenticationResponseJSON)."""
        options = _load(options_json)
        rp_id = options.get("rpId") or _host(origin)
        allowed = [unb64url(c["id"]) for c in options.get("allowCredentials", [])]
        usable = [
            cid
            for cid in (allowed or list(self.credentials))
            if cid in self.credentials and self.credentials[cid].rp_id == rp_id
        ]
        if not usable:
            raise AuthenticatorRefused("NotAllowedError: no credential here is allowed")
        credential_id = usable[0]
        credential = self.credentials[credential_id]
        credential.sign_count += self.count_step
        auth_data = self._auth_data(credential, 0)
        client_data = _client_data("webauthn.get", options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = credential.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return _public_key_credential(
            credential_id,
            {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
        )

    def _auth_data(self, credential: _Credential, extra_flags: int) -> bytes:
        flags = UP | (UV if self.user_verified else 0) | extra_flags
        return (
            hashlib.sha256(credential.rp_id.encode()).digest()
            + bytes([flags])
            + credential.sign_count.to_bytes(4, "big")
        )


def _load(options: str | Mapping[str, Any]) -> dict[str, Any]:
    loaded = json.loads(options) if isinstance(options, str) else dict(options)
    # Some servers wrap the options as {"publicKey": {...}}, as the browser API takes them.
    inner = loaded.get("publicKey", loaded)
    if not isinstance(inner, dict):
        raise AuthenticatorRefused("TypeError: the options are not an object")
    return inner


def _host(origin: str) -> str:
    return urlsplit(origin).hostname or ""


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    body = {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
    return json.dumps(body, separators=(",", ":")).encode()


def _cose_key(key: ec.EllipticCurvePrivateKey) -> dict[int, Any]:
    numbers = key.public_key().public_numbers()
    return {
        1: 2,  # kty: EC2
        3: ES256,  # alg
        -1: 1,  # crv: P-256
        -2: numbers.x.to_bytes(32, "big"),
        -3: numbers.y.to_bytes(32, "big"),
    }


def _public_key_credential(credential_id: bytes, response: dict[str, Any]) -> dict[str, Any]:
    """A PublicKeyCredential as the browser serialises it (toJSON()), around its response."""
    return {
        "id": b64url(credential_id),
        "rawId": b64url(credential_id),
        "type": "public-key",
        "authenticatorAttachment": "cross-platform",
        "clientExtensionResults": {},
        "response": response,
    }
