"""WebAuthn registration and authentication ceremonies: thin, pure wrappers over py_webauthn.

The client data (type, challenge, origin) is checked here first, so a refusal names what
was wrong without repeating what the browser sent; py_webauthn then checks the rest
(relying party, flags, attestation, signature). The sign count is checked here too: a count
that does not grow means two authenticators hold the same key (a clone).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
    options_to_json,
    parse_client_data_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ClientDataType,
    CollectedClientData,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

#: ES256 first: every authenticator has it. Then EdDSA and RS256 (Windows Hello).
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
#: What py_webauthn and the libraries under it raise on malformed responses.
_MALFORMED = (
    WebAuthnException,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    UnsupportedAlgorithm,
)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class CeremonyFailed(Exception):
    """The browser's response does not verify; `reason` is safe to show and to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    """Who asks for credentials: the site's id (registrable domain), name and origins."""

    id: str
    name: str
    origins: tuple[str, ...]
    require_user_verification: bool = False


@dataclass(frozen=True)
class CeremonyOptions:
    """Options for `navigator.credentials.create()` or `.get()`, and their challenge."""

    challenge: bytes
    options: dict[str, Any]


@dataclass(frozen=True)
class NewCredential:
    """A verified registration: what to store to verify the credential's assertions."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    user_verified: bool
    multi_device: bool


@dataclass(frozen=True)
class Assertion:
    """A verified authentication: the credential used and its new sign count."""

    credential_id: bytes
    sign_count: int
    user_verified: bool
    multi_device: bool


def user_handle(user_id: str) -> bytes:
    """The opaque WebAuthn user handle of an identity (not its id: no personal data)."""
    return hashlib.sha256(b"accord:webauthn:user:" + user_id.encode()).digest()


def registration_options(
    rp: RelyingParty,
    *,
    user_id: str,
    user_name: str,
    exclude: Sequence[bytes],
    timeout_ms: int,
    challenge: bytes | None = None,
) -> CeremonyOptions:
    """Options to create a credential; the user's existing credentials are excluded."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user_name,
        user_id=user_handle(user_id),
        challenge=challenge,
        timeout=timeout_ms,
        authenticator_selection=AuthenticatorSelectionCriteria(
            # A second factor: Accord always names the allowed credentials, so no need to
            # spend a security key's few resident slots.
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
        supported_pub_key_algs=ALGORITHMS,
    )
    return CeremonyOptions(options.challenge, json.loads(options_to_json(options)))


def authentication_options(
    rp: RelyingParty, *, allow: Sequence[bytes], timeout_ms: int, challenge: bytes | None = None
) -> CeremonyOptions:
    """Options to get an assertion from one of the user's credentials."""
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=timeout_ms,
        allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow],
        user_verification=(
            UserVerificationRequirement.REQUIRED
            if rp.require_user_verification
            else UserVerificationRequirement.PREFERRED
        ),
    )
    return CeremonyOptions(options.challenge, json.loads(options_to_json(options)))


def challenge_of(response: Mapping[str, Any]) -> bytes | None:
    """The challenge the response claims to answer (unverified): finds the ceremony."""
    try:
        return _client_data(response).challenge
    except CeremonyFailed:
        return None


def credential_id_of(response: Mapping[str, Any]) -> bytes | None:
    """The credential id (`rawId`) the response names (unverified): finds the credential."""
    raw = response.get("rawId")
    if not isinstance(raw, str):
        return None
    try:
        return base64url_to_bytes(raw)
    except ValueError:
        return None


def verify_registration(
    rp: RelyingParty, response: Mapping[str, Any], *, challenge: bytes
) -> NewCredential:
    """Verify `navigator.credentials.create()`'s response; CeremonyFailed if it does not."""
    _check_client_data(rp, response, ClientDataType.WEBAUTHN_CREATE, challenge)
    try:
        verified = verify_registration_response(
            credential=dict(response),
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            require_user_verification=rp.require_user_verification,
            supported_pub_key_algs=ALGORITHMS,
        )
        # py_webauthn does not load a key it is not asked to check a signature with
        # ("none" attestation): load it now rather than store one no assertion can verify.
        decoded_public_key_to_cryptography(
            decode_credential_public_key(verified.credential_public_key)
        )
    except _MALFORMED as error:
        raise CeremonyFailed(_describe("registration", error)) from None
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        user_verified=verified.user_verified,
        multi_device=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
    )


def verify_assertion(
    rp: RelyingParty,
    response: Mapping[str, Any],
    *,
    challenge: bytes,
    public_key: bytes,
    sign_count: int,
    expected_user_handle: bytes | None = None,
) -> Assertion:
    """Verify `navigator.credentials.get()`'s response against the stored credential."""
    _check_client_data(rp, response, ClientDataType.WEBAUTHN_GET, challenge)
    try:
        verified = verify_authentication_response(
            credential=dict(response),
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            credential_public_key=public_key,
            # Zero turns py_webauthn's own counter check off: ours below names the clone.
            credential_current_sign_count=0,
            require_user_verification=rp.require_user_verification,
        )
    except _MALFORMED as error:
        raise CeremonyFailed(_describe("assertion", error)) from None
    handle = _user_handle_of(response)
    if (
        expected_user_handle is not None
        and handle is not None
        and not hmac.compare_digest(handle, expected_user_handle)
    ):
        raise CeremonyFailed("the assertion is for another user")
    new_count = verified.new_sign_count
    if (new_count > 0 or sign_count > 0) and new_count <= sign_count:
        raise CeremonyFailed(
            f"the sign count did not grow ({new_count} after {sign_count}):"
            " the authenticator may have been cloned"
        )
    return Assertion(
        credential_id=verified.credential_id,
        sign_count=new_count,
        user_verified=verified.user_verified,
        multi_device=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
    )


def _client_data(response: Mapping[str, Any]) -> CollectedClientData:
    inner = response.get("response")
    encoded = inner.get("clientDataJSON") if isinstance(inner, Mapping) else None
    if not isinstance(encoded, str):
        raise CeremonyFailed("the response has no clientDataJSON")
    try:
        data = parse_client_data_json(base64url_to_bytes(encoded))
    except _MALFORMED:
        raise CeremonyFailed("clientDataJSON is malformed") from None
    if not isinstance(data.origin, str) or not isinstance(data.type, str):
        raise CeremonyFailed("clientDataJSON is malformed")
    return data


def _check_client_data(
    rp: RelyingParty, response: Mapping[str, Any], kind: ClientDataType, challenge: bytes
) -> None:
    data = _client_data(response)
    if data.type != kind.value:
        wanted = "a registration" if kind == ClientDataType.WEBAUTHN_CREATE else "an authentication"
        raise CeremonyFailed(f"not {wanted} response")
    if not hmac.compare_digest(data.challenge, challenge):
        raise CeremonyFailed("the challenge does not match")
    if data.origin not in rp.origins:
        raise CeremonyFailed("the origin is not one of the relying party's")
    if data.cross_origin:
        raise CeremonyFailed("cross-origin ceremonies are not allowed")


def _user_handle_of(response: Mapping[str, Any]) -> bytes | None:
    inner = response.get("response")
    handle = inner.get("userHandle") if isinstance(inner, Mapping) else None
    if not isinstance(handle, str) or not handle:
        return None
    try:
        return base64url_to_bytes(handle)
    except ValueError:
        raise CeremonyFailed("the userHandle is malformed") from None


def _describe(what: str, error: Exception) -> str:
    # py_webauthn's messages may quote what the browser sent: printable and short only.
    detail = _UNPRINTABLE.sub("?", str(error))[:160] or type(error).__name__
    return f"the {what} did not verify: {detail}"
