"""Security Event Tokens: claims Accord builds, signatures, and the checks a received SET
must pass, each refusal with its RFC 8935 error code."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.authn import ssf_api, ssf_keys
from accord.authn.bootstrap import definition
from accord.authn.domain import set_tokens as st
from accord.authn.domain.set_tokens import SetRejected
from accord.authn.receiver import (
    JwksCache,
    JwksUnavailable,
    Receiver,
    TransmittersFileError,
    TrustedTransmitter,
    load_transmitters,
)
from accord.authn.settings import AuthnSettings
from accord.authn.ssf_keys import SigningKey, generate_signing_key, load_signing_key

ISSUER = "https://idp.example.com/"
AUDIENCE = "https://accord.example.com/receiver"


async def select_key(jwks: dict[str, Any], kid: str | None) -> jwt.PyJWK | None:
    """The key the receiver's key cache picks from an issuer serving `jwks`."""
    cache = JwksCache(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=jwks)))
    trusted = TrustedTransmitter(ISSUER, "https://idp.example.com/jwks", AUDIENCE, frozenset())
    try:
        return await cache.key_for(trusted, kid, "ES256")
    finally:
        await cache.aclose()


NOW = 1_760_000_000.0


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


def claims(**changes: Any) -> dict[str, Any]:
    built = st.build_set(
        issuer=ISSUER,
        audience=AUDIENCE,
        event_uri=st.ACCOUNT_DISABLED,
        event=st.account_disabled("hijacking"),
        subject={"format": "email", "email": "ada@example.com"},
        now=NOW,
        jti="jti-1",
    )
    built.update(changes)
    return {k: v for k, v in built.items() if v is not None}


def check(token_claims: dict[str, Any], **options: Any) -> st.CheckedSet:
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "now": NOW,
        "max_age_s": 300.0,
    }
    settings.update(options)
    return st.check_claims(token_claims, **settings)


def test_a_set_carries_one_event_about_one_subject() -> None:
    built = st.build_set(
        issuer="https://accord.test",
        audience=["rp-1", "rp-2"],
        event_uri=st.SESSION_REVOKED,
        event=st.session_revoked(event_timestamp=1615304991, reason_admin="lockout"),
        subject=st.user_subject("u-1", "ada@example.com"),
        now=NOW,
        txn="t-9",
    )

    assert built["iss"] == "https://accord.test"
    assert built["aud"] == ["rp-1", "rp-2"]
    assert built["iat"] == int(NOW)
    assert len(built["jti"]) == 32
    assert built["txn"] == "t-9"
    assert "sub" not in built
    assert built["sub_id"] == {
        "format": "aliases",
        "identifiers": [
            {"format": "opaque", "id": "u-1"},
            {"format": "email", "email": "ada@example.com"},
        ],
    }
    assert built["events"] == {
        st.SESSION_REVOKED: {
            "event_timestamp": 1615304991,
            "initiating_entity": "policy",
            "reason_admin": {"en": "lockout"},
        }
    }


def test_without_an_email_the_subject_is_the_opaque_user_id() -> None:
    assert st.user_subject("u-1", None) == {"format": "opaque", "id": "u-1"}


def test_event_members_follow_caep_and_risc() -> None:
    assert st.credential_change(credential_type="fido2-roaming", change_type="create") == {
        "credential_type": "fido2-roaming",
        "change_type": "create",
    }
    assert st.account_disabled() == {}
    assert st.account_disabled("bulk-account") == {"reason": "bulk-account"}
    assert st.account_enabled() == {}
    assert st.session_revoked(initiating_entity=None) == {}


def test_a_signed_set_is_typed_and_names_its_key(key: SigningKey) -> None:
    token = key.sign(claims())

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "typ": "secevent+jwt", "kid": key.kid}
    public = jwt.PyJWKSet.from_dict(key.jwks()).keys[0]
    assert jwt.decode(token, public.key, algorithms=["ES256"], audience=AUDIENCE)["jti"] == "jti-1"


def test_the_kid_is_the_rfc7638_thumbprint(key: SigningKey) -> None:
    (jwk,) = key.jwks()["keys"]
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    digest = base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=")
    assert key.kid == digest.decode()
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert "d" not in jwk


async def test_a_good_set_passes_every_check(key: SigningKey) -> None:
    token = key.sign(claims())
    header, issuer = st.unverified_header_and_issuer(token)
    assert issuer == ISSUER
    found = await select_key(key.jwks(), header["kid"])
    assert found is not None

    checked = check(st.verify_signature(token, found, header["alg"]))

    assert (checked.issuer, checked.jti, checked.event_uri) == (
        ISSUER,
        "jti-1",
        st.ACCOUNT_DISABLED,
    )
    assert checked.event == {"reason": "hijacking"}
    assert st.subject_candidates(checked.subject) == [("email", "ada@example.com")]


async def test_a_signature_by_another_key_is_invalid_key(key: SigningKey) -> None:
    forger = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    token = forger.sign(claims())
    found = await select_key(key.jwks(), None)
    assert found is not None

    with pytest.raises(SetRejected) as refused:
        st.verify_signature(token, found, "ES256")

    assert refused.value.err == "invalid_key"


async def test_an_expired_set_is_refused_as_such(key: SigningKey) -> None:
    token = key.sign(claims(exp=int(time.time()) - 10))
    found = await select_key(key.jwks(), key.kid)
    assert found is not None
    with pytest.raises(SetRejected, match="expired") as refused:
        st.verify_signature(token, found, "ES256")
    assert refused.value.err == "invalid_request"


@pytest.mark.parametrize(
    ("header", "payload", "err"),
    [
        ({"typ": "JWT"}, {"iss": ISSUER}, "invalid_request"),
        ({}, {"iss": ISSUER}, "invalid_request"),
        ({"typ": "secevent+jwt"}, {}, "invalid_issuer"),
    ],
)
def test_what_the_header_says_is_checked_first(
    key: SigningKey, header: dict[str, str], payload: dict[str, Any], err: str
) -> None:
    token = jwt.encode(payload, key._private_key, algorithm="ES256", headers=header)
    with pytest.raises(SetRejected) as refused:
        st.unverified_header_and_issuer(token)
    assert refused.value.err == err


def test_a_shared_secret_algorithm_is_never_accepted() -> None:
    token = jwt.encode(
        {"iss": ISSUER}, "k" * 32, algorithm="HS256", headers={"typ": "secevent+jwt"}
    )
    with pytest.raises(SetRejected) as refused:
        st.unverified_header_and_issuer(token)
    assert refused.value.err == "invalid_key"


def test_garbage_is_malformed() -> None:
    with pytest.raises(SetRejected) as refused:
        st.unverified_header_and_issuer("not.a.jwt")
    assert refused.value.err == "invalid_request"


@pytest.mark.parametrize(
    ("changes", "options", "err", "says"),
    [
        ({"iss": "https://evil.example"}, {}, "invalid_issuer", "iss"),
        ({"aud": "someone-else"}, {}, "invalid_audience", "aud"),
        ({"aud": ["someone-else", AUDIENCE]}, {}, None, ""),
        ({"iat": int(NOW) - 301}, {}, "invalid_request", "stale"),
        ({"iat": int(NOW) + 600}, {}, "invalid_request", "future"),
        ({"iat": int(NOW) + 30}, {}, None, ""),
        ({"iat": "yesterday"}, {}, "invalid_request", "iat"),
        ({"jti": None}, {}, "invalid_request", "jti"),
        ({"jti": "j" * 257}, {}, "invalid_request", "jti"),
        ({"events": {}}, {}, "invalid_request", "exactly one"),
        (
            {"events": {st.ACCOUNT_DISABLED: {}, st.SESSION_REVOKED: {}}},
            {},
            "invalid_request",
            "exactly one",
        ),
        (
            {"sub_id": {"format": "phone_number", "phone_number": "+1"}},
            {},
            "invalid_request",
            "sub_id",
        ),
        ({"sub_id": {"format": "email"}}, {}, "invalid_request", "sub_id"),
        ({"iat": int(NOW) - 200}, {"max_age_s": 100.0}, "invalid_request", "stale"),
    ],
)
def test_claims_checks(
    changes: dict[str, Any], options: dict[str, Any], err: str | None, says: str
) -> None:
    built = claims()
    built.update(changes)
    built = {k: v for k, v in built.items() if v is not None}
    if err is None:
        check(built, **options)
        return
    with pytest.raises(SetRejected, match=says) as refused:
        check(built, **options)
    assert refused.value.err == err


def test_an_event_level_subject_is_read_when_there_is_no_sub_id() -> None:
    built = claims(sub_id=None)
    built["events"] = {st.SESSION_REVOKED: {"subject": {"format": "opaque", "id": "u-7"}}}
    assert check(built).subject == {"format": "opaque", "id": "u-7"}


def test_subjects_name_identities_in_order() -> None:
    assert st.subject_candidates({"format": "iss_sub", "iss": ISSUER, "sub": "u-1"}) == [
        ("user_id", "u-1")
    ]
    complex_subject = {
        "format": "complex",
        "user": {"format": "email", "email": "ada@example.com"},
        "device": {"format": "opaque", "id": "d-1"},
    }
    assert st.subject_candidates(complex_subject) == [("email", "ada@example.com")]
    assert st.subject_candidates(st.user_subject("u-1", "ada@example.com")) == [
        ("user_id", "u-1"),
        ("email", "ada@example.com"),
    ]


async def test_keys_are_chosen_by_kid(key: SigningKey) -> None:
    other = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    both = {"keys": key.jwks()["keys"] + other.jwks()["keys"]}

    chosen = await select_key(both, other.kid)
    assert chosen is not None
    assert chosen.key_id == other.kid
    assert await select_key(both, None) is None  # ambiguous without a kid
    assert await select_key(both, "nope") is None
    # A key set that is not one cannot be had: the transmitter is told to retry (503).
    with pytest.raises(JwksUnavailable):
        await select_key({"keys": "broken"}, key.kid)


@pytest.mark.parametrize(
    ("event_uri", "event", "action"),
    [
        (st.ACCOUNT_DISABLED, {}, "lock"),
        (st.CREDENTIAL_COMPROMISE, {"credential_type": "password"}, "lock"),
        (st.RISK_LEVEL_CHANGE, {"current_level": "HIGH", "principal": "USER"}, "lock"),
        (st.RISK_LEVEL_CHANGE, {"current_level": "MEDIUM", "principal": "USER"}, "none"),
        (st.SESSION_REVOKED, {}, "revoke_sessions"),
        (st.ACCOUNT_ENABLED, {}, "none"),
        (st.CREDENTIAL_CHANGE, {"credential_type": "app", "change_type": "create"}, "none"),
        ("urn:example:unknown", {}, "none"),
    ],
)
def test_what_a_signal_makes_accord_do(event_uri: str, event: dict[str, Any], action: str) -> None:
    assert st.action_for(event_uri, event) == action


def test_no_key_file_means_no_transmitter(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_signing_key(None) is None
    assert "transmitter disabled" in caplog.text


def test_a_generated_key_loads_back_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "ssf.pem"
    made = generate_signing_key(path)

    loaded = load_signing_key(path)

    assert loaded is not None
    assert loaded.kid == made.kid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "PRIVATE" not in repr(loaded)
    assert repr(loaded) == f"SigningKey(kid={made.kid!r})"


def test_keys_that_cannot_sign_sets_are_refused(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "p384.pem").write_bytes(p384)
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")

    with pytest.raises(ssf_keys.SigningKeyError, match="P-256"):
        load_signing_key(tmp_path / "p384.pem")
    with pytest.raises(ssf_keys.SigningKeyError, match=r"junk\.pem") as refused:
        load_signing_key(tmp_path / "junk.pem")
    assert "nope" not in str(refused.value)
    with pytest.raises(ssf_keys.SigningKeyError):
        load_signing_key(tmp_path / "missing.pem")


def test_the_transmitters_file_names_trusted_issuers(tmp_path: Path) -> None:
    path = tmp_path / "transmitters.yaml"
    path.write_text(
        "- issuer: https://idp.example.com/\n"
        "  jwks_uri: https://idp.example.com/jwks\n"
        "  audience: accord\n"
        "  callers: [okta]\n"
    )

    (trusted,) = load_transmitters(path).values()

    assert trusted == TrustedTransmitter(
        "https://idp.example.com/", "https://idp.example.com/jwks", "accord", frozenset({"okta"})
    )
    assert load_transmitters(None) == {}


@pytest.mark.parametrize(
    "entry",
    [
        "- issuer: http://idp.example.com/\n  jwks_uri: https://idp.example.com/jwks\n",
        "- issuer: https://idp.example.com/\n  jwks_uri: http://idp.example.com/jwks\n",
    ],
)
def test_a_transmitter_is_trusted_over_https_unless_the_development_flag_allows_http(
    tmp_path: Path, entry: str
) -> None:
    # SSF 1.0: the issuer and jwks_uri are https; a key set fetched over plain http could be
    # anyone's. ACCORD_SSF_ALLOW_HTTP (development only) lets them be http.
    path = tmp_path / "transmitters.yaml"
    path.write_text(entry + "  audience: accord\n")
    with pytest.raises(TransmittersFileError, match="https"):
        load_transmitters(path)
    (trusted,) = load_transmitters(path, allow_http=True).values()
    assert trusted.audience == "accord"


def test_the_issuer_is_https_unless_the_development_flag_allows_http(tmp_path: Path) -> None:
    key = generate_signing_key(tmp_path / "ssf.pem")
    plain = AuthnSettings(
        public_url="http://authn.example.org", ssf_signing_key_file=tmp_path / "ssf.pem"
    )
    with pytest.raises(ssf_api.InsecureTransmitter, match="ACCORD_SSF_ALLOW_HTTP"):
        ssf_api.check_transmitter(plain, key)
    ssf_api.check_transmitter(plain, None)  # no key: no transmitter, no issuer
    ssf_api.check_transmitter(plain.model_copy(update={"ssf_allow_http": True}), key)
    secure = plain.model_copy(update={"public_url": "https://authn.example.org"})
    ssf_api.check_transmitter(secure, key)
    with pytest.raises(ssf_api.InsecureTransmitter):
        definition(plain)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("issuer: x", "list"),
        ("- issuer: x\n  jwks_uri: https://x/jwks\n", "audience"),
        ("- issuer: x\n  audience: a\n  jwks_uri: file:///etc/jwks\n", "jwks_uri"),
        ("- issuer: x\n  audience: a\n  jwks_uri: https://x\n  callers: okta\n", "callers"),
        ("- [unbalanced", "cannot read"),
    ],
)
def test_a_bad_transmitters_file_stops_the_start(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "transmitters.yaml"
    path.write_text(text)
    with pytest.raises(TransmittersFileError, match=says):
        load_transmitters(path)


async def test_only_the_named_callers_may_push_an_issuers_sets(key: SigningKey) -> None:
    trusted = TrustedTransmitter(ISSUER, "https://idp.example.com/jwks", AUDIENCE, frozenset({"a"}))
    receiver = Receiver({ISSUER: trusted}, JwksCache(), max_age_s=300.0)

    with pytest.raises(SetRejected) as refused:
        await receiver.verify(key.sign(claims()), "okta")

    assert refused.value.err == "access_denied"
