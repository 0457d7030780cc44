"""WebAuthn ceremonies through py_webauthn's real verification, against a software
authenticator: registration, assertions, wrong origins and challenges, clones."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from accord.authn.domain import webauthn_ceremonies as ceremonies
from accord.authn.domain.webauthn_ceremonies import CeremonyFailed, NewCredential, RelyingParty
from accord.authn.testing import SoftwareAuthenticator
from accord.authn.testing.authenticator import AuthenticatorRefused, b64url, unb64url

ORIGIN = "https://login.example.com"
RP = RelyingParty("example.com", "Example", (ORIGIN, "https://example.com"))
TIMEOUT = 300_000


def register(
    authenticator: SoftwareAuthenticator, user_id: str = "ada", rp: RelyingParty = RP
) -> NewCredential:
    options = ceremonies.registration_options(
        rp, user_id=user_id, user_name=user_id, exclude=[], timeout_ms=TIMEOUT
    )
    response = authenticator.create(options.options, ORIGIN)
    return ceremonies.verify_registration(rp, response, challenge=options.challenge)


def assertion(
    authenticator: SoftwareAuthenticator, credential: NewCredential, origin: str = ORIGIN
) -> tuple[bytes, dict[str, Any]]:
    options = ceremonies.authentication_options(
        RP, allow=[credential.credential_id], timeout_ms=TIMEOUT
    )
    return options.challenge, authenticator.get(options.options, origin)


def verify(
    credential: NewCredential,
    challenge: bytes,
    response: dict[str, Any],
    sign_count: int,
    user_id: str = "ada",
    rp: RelyingParty = RP,
) -> ceremonies.Assertion:
    return ceremonies.verify_assertion(
        rp,
        response,
        challenge=challenge,
        public_key=credential.public_key,
        sign_count=sign_count,
        expected_user_handle=ceremonies.user_handle(user_id),
    )


def edit_client_data(response: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = json.loads(unb64url(response["response"]["clientDataJSON"]))
    data.update(changes)
    edited: dict[str, Any] = json.loads(json.dumps(response))
    edited["response"]["clientDataJSON"] = b64url(json.dumps(data).encode())
    return edited


# --- options ---------------------------------------------------------------------------------


def test_registration_options_ask_for_es256_eddsa_rs256_and_preferred_verification() -> None:
    existing = [b"\x01" * 16, b"\x02" * 32]

    options = ceremonies.registration_options(
        RP, user_id="ada", user_name="ada@example.com", exclude=existing, timeout_ms=TIMEOUT
    ).options

    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["rp"] == {"id": "example.com", "name": "Example"}
    assert options["user"]["name"] == "ada@example.com"
    assert unb64url(options["user"]["id"]) == ceremonies.user_handle("ada")
    assert [unb64url(c["id"]) for c in options["excludeCredentials"]] == existing
    assert options["attestation"] == "none"
    assert options["timeout"] == TIMEOUT
    assert len(unb64url(options["challenge"])) >= 32


def test_an_excluded_authenticator_is_not_registered_twice() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    options = ceremonies.registration_options(
        RP, user_id="ada", user_name="ada", exclude=[credential.credential_id], timeout_ms=TIMEOUT
    )

    with pytest.raises(AuthenticatorRefused, match="InvalidStateError"):
        authenticator.create(options.options, ORIGIN)


def test_authentication_options_allow_the_users_credentials() -> None:
    options = ceremonies.authentication_options(RP, allow=[b"\x07" * 20], timeout_ms=TIMEOUT)

    assert options.options["rpId"] == "example.com"
    assert [unb64url(c["id"]) for c in options.options["allowCredentials"]] == [b"\x07" * 20]
    assert options.options["userVerification"] == "preferred"


# --- registration ----------------------------------------------------------------------------


def test_a_registration_verifies_and_yields_the_public_key() -> None:
    authenticator = SoftwareAuthenticator()

    credential = register(authenticator)

    assert credential.credential_id in authenticator.credentials
    assert credential.sign_count == 0
    assert credential.user_verified
    assert not credential.multi_device
    assert credential.public_key.startswith(b"\xa5")  # a CBOR map of 5: a COSE EC2 key


def test_a_registration_from_another_origin_is_refused() -> None:
    options = ceremonies.registration_options(
        RP, user_id="ada", user_name="ada", exclude=[], timeout_ms=TIMEOUT
    )
    response = SoftwareAuthenticator().create(options.options, "https://evil.example.net")

    with pytest.raises(CeremonyFailed, match="origin is not one of") as caught:
        ceremonies.verify_registration(RP, response, challenge=options.challenge)
    assert "evil" not in caught.value.reason


def test_a_registration_for_another_challenge_is_refused() -> None:
    options = ceremonies.registration_options(
        RP, user_id="ada", user_name="ada", exclude=[], timeout_ms=TIMEOUT
    )
    response = SoftwareAuthenticator().create(options.options, ORIGIN)

    with pytest.raises(CeremonyFailed, match="the challenge does not match"):
        ceremonies.verify_registration(RP, response, challenge=b"another challenge")


def test_a_registration_for_another_relying_party_is_refused() -> None:
    other = RelyingParty("evil.example.net", "Evil", RP.origins)
    options = ceremonies.registration_options(
        other, user_id="ada", user_name="ada", exclude=[], timeout_ms=TIMEOUT
    )
    response = SoftwareAuthenticator().create(options.options, ORIGIN)

    with pytest.raises(CeremonyFailed, match="RP ID hash"):
        ceremonies.verify_registration(RP, response, challenge=options.challenge)


def test_an_assertion_is_not_a_registration() -> None:
    authenticator = SoftwareAuthenticator()
    challenge, response = assertion(authenticator, register(authenticator))

    with pytest.raises(CeremonyFailed, match="not a registration response"):
        ceremonies.verify_registration(RP, response, challenge=challenge)


def test_required_user_verification_refuses_an_unverified_authenticator() -> None:
    strict = RelyingParty(RP.id, RP.name, RP.origins, require_user_verification=True)

    with pytest.raises(CeremonyFailed, match="verif"):
        register(SoftwareAuthenticator(user_verified=False), rp=strict)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: r["response"].update(clientDataJSON=b64url(b"not json")),
        lambda r: r["response"].update(clientDataJSON="%%%"),
        lambda r: r["response"].pop("clientDataJSON"),
        lambda r: r["response"].update(attestationObject=b64url(b"\xff\x00garbage")),
        lambda r: r.update(rawId=b64url(b"another id")),
        lambda r: r.update(response="nothing"),
    ],
)
def test_malformed_registrations_fail_as_ceremonies(mangle: Any) -> None:
    options = ceremonies.registration_options(
        RP, user_id="ada", user_name="ada", exclude=[], timeout_ms=TIMEOUT
    )
    response = SoftwareAuthenticator().create(options.options, ORIGIN)
    mangle(response)

    with pytest.raises(CeremonyFailed):
        ceremonies.verify_registration(RP, response, challenge=options.challenge)


# --- authentication --------------------------------------------------------------------------


def test_an_assertion_verifies_and_its_sign_count_grows() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)

    challenge, response = assertion(authenticator, credential)
    first = verify(credential, challenge, response, sign_count=0)
    challenge, response = assertion(authenticator, credential)
    second = verify(credential, challenge, response, sign_count=first.sign_count)

    assert first.credential_id == credential.credential_id
    assert (first.sign_count, second.sign_count) == (1, 2)
    assert first.user_verified


def test_an_assertion_from_another_origin_is_refused() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    challenge, response = assertion(authenticator, credential, origin="https://evil.example.net")

    with pytest.raises(CeremonyFailed, match="origin is not one of"):
        verify(credential, challenge, response, sign_count=0)


def test_an_assertion_for_another_challenge_is_refused() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    _, response = assertion(authenticator, credential)

    with pytest.raises(CeremonyFailed, match="the challenge does not match"):
        verify(credential, b"\x00" * 64, response, sign_count=0)


def test_a_replayed_assertion_is_refused() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    challenge, response = assertion(authenticator, credential)
    used = verify(credential, challenge, response, sign_count=0)

    with pytest.raises(CeremonyFailed, match="the sign count did not grow"):
        verify(credential, challenge, response, sign_count=used.sign_count)


def test_a_cloned_authenticator_is_refused_with_a_clear_reason() -> None:
    original = SoftwareAuthenticator()
    credential = register(original)
    clone = original.clone()
    challenge, response = assertion(original, credential)
    count = verify(credential, challenge, response, sign_count=0).sign_count

    challenge, response = assertion(clone, credential)  # the clone also says 1

    with pytest.raises(CeremonyFailed) as caught:
        verify(credential, challenge, response, sign_count=count)
    assert caught.value.reason == (
        "the sign count did not grow (1 after 1): the authenticator may have been cloned"
    )


def test_an_authenticator_that_does_not_count_is_accepted_at_zero() -> None:
    authenticator = SoftwareAuthenticator(count_step=0)
    credential = register(authenticator)

    for _ in range(3):
        challenge, response = assertion(authenticator, credential)
        assert verify(credential, challenge, response, sign_count=0).sign_count == 0


def test_a_count_going_back_to_zero_is_refused() -> None:
    authenticator = SoftwareAuthenticator(count_step=0)
    credential = register(authenticator)
    challenge, response = assertion(authenticator, credential)

    with pytest.raises(CeremonyFailed, match="did not grow"):
        verify(credential, challenge, response, sign_count=5)


def test_another_keys_signature_is_refused() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    impostor = register(SoftwareAuthenticator())
    challenge, response = assertion(authenticator, credential)

    with pytest.raises(CeremonyFailed, match="signature"):
        verify(impostor, challenge, response, sign_count=0)


def test_a_tampered_client_data_breaks_the_signature() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    challenge, response = assertion(authenticator, credential)
    tampered = edit_client_data(response, extra="added after signing")

    with pytest.raises(CeremonyFailed, match="signature"):
        verify(credential, challenge, tampered, sign_count=0)


def test_an_assertion_for_another_user_handle_is_refused() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator, user_id="eve")
    challenge, response = assertion(authenticator, credential)

    with pytest.raises(CeremonyFailed, match="for another user"):
        verify(credential, challenge, response, sign_count=0, user_id="ada")


def test_cross_origin_assertions_are_refused() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    challenge, response = assertion(authenticator, credential)

    with pytest.raises(CeremonyFailed, match="cross-origin"):
        verify(credential, challenge, edit_client_data(response, crossOrigin=True), 0)


def test_a_registration_is_not_an_assertion() -> None:
    options = ceremonies.registration_options(
        RP, user_id="ada", user_name="ada", exclude=[], timeout_ms=TIMEOUT
    )
    authenticator = SoftwareAuthenticator()
    response = authenticator.create(options.options, ORIGIN)
    credential = ceremonies.verify_registration(RP, response, challenge=options.challenge)

    with pytest.raises(CeremonyFailed, match="not an authentication response"):
        verify(credential, options.challenge, response, sign_count=0)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: r["response"].update(authenticatorData=b64url(b"short")),
        lambda r: r["response"].update(signature=b64url(b"not a signature")),
        lambda r: r["response"].update(userHandle="%%%"),
        lambda r: r["response"].pop("signature"),
        lambda r: r.update(type="password"),
    ],
)
def test_malformed_assertions_fail_as_ceremonies(mangle: Any) -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    challenge, response = assertion(authenticator, credential)
    mangle(response)

    with pytest.raises(CeremonyFailed):
        verify(credential, challenge, response, sign_count=0)


def test_the_unverified_lookups_find_ceremony_and_credential() -> None:
    authenticator = SoftwareAuthenticator()
    credential = register(authenticator)
    challenge, response = assertion(authenticator, credential)

    assert ceremonies.challenge_of(response) == challenge
    assert ceremonies.credential_id_of(response) == credential.credential_id
    assert ceremonies.challenge_of({"response": {"clientDataJSON": "!!"}}) is None
    assert ceremonies.challenge_of({}) is None
    assert ceremonies.credential_id_of({"rawId": 42}) is None
    assert ceremonies.credential_id_of({"rawId": "a"}) is None


def test_the_user_handle_is_opaque_and_stable() -> None:
    handle = ceremonies.user_handle("ada@example.com")

    assert handle == ceremonies.user_handle("ada@example.com")
    assert handle != ceremonies.user_handle("eve@example.com")
    assert b"ada" not in handle
    assert len(handle) == 32
    assert base64.urlsafe_b64encode(handle)  # fits the 64-byte limit with room
