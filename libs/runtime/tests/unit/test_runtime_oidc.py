"""OidcVerifier against a JWKS served by the test: signatures, claims, key rotation, failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from accord.runtime.security.oidc import OidcConfig, OidcVerifier, TokenRejected, VerifiedToken

ISSUER = "https://login.example.com/realms/acme"
AUDIENCE = "accord-api"
JWKS_URL = "https://login.example.com/realms/acme/protocol/openid-connect/certs"
CONFIG = OidcConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=JWKS_URL)
T0 = 1_700_000_000.0

RSA_1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_1 = ec.generate_private_key(ec.SECP256R1())
ED_1 = ed25519.Ed25519PrivateKey.generate()

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def public_jwk(key: PrivateKey, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    """The JWK an issuer would publish for key; "alg" only when given, like many issuers."""
    family = {rsa.RSAPrivateKey: "RS256", ec.EllipticCurvePrivateKey: "ES256"}
    name = next((a for t, a in family.items() if isinstance(key, t)), "EdDSA")
    jwk: dict[str, Any] = jwt.get_algorithm_by_name(name).to_jwk(key.public_key(), as_dict=True)
    jwk.update({"use": "sig"} | ({"kid": kid} if kid else {}) | ({"alg": alg} if alg else {}))
    return jwk


def claims(now: float = T0, **overrides: Any) -> dict[str, Any]:
    """Valid claims at `now`; an override of None removes the claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 300,
        "roles": ["operator", "auditor"],
        "scope": "openid identities:read",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: PrivateKey, alg: str = "RS256", kid: str | None = "rsa-1", **overrides: Any) -> str:
    """A token signed by key, with claims(**overrides)."""
    now = overrides.pop("now", T0)
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(now, **overrides), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    """Base64url without padding, as JOSE wants it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """The signing input of a hand-made token."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeIssuer:
    """The issuer's JWKS endpoint: a key set to edit, a status to break, a count of fetches."""

    def __init__(self, *jwks: dict[str, Any]) -> None:
        self.keys = list(jwks)
        self.fetches = 0
        self.status = 200
        self.body: bytes | None = None
        self.error: Exception | None = None
        self.timeouts: list[Any] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        self.timeouts.append(request.extensions.get("timeout"))
        await asyncio.sleep(0.01)  # long enough for concurrent verifications to pile up
        if self.error is not None:
            raise self.error
        if self.body is not None:
            return httpx.Response(self.status, content=self.body)
        return httpx.Response(self.status, json={"keys": self.keys})


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every JWT starts with base64url('{"'), "eyJ": none may reach a log record."""
    caplog.set_level(logging.DEBUG)
    yield
    # caplog.text would only hold the teardown phase by now.
    assert not [r for r in caplog.get_records("call") if "eyJ" in r.getMessage()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer(
        public_jwk(RSA_1, "rsa-1"), public_jwk(EC_1, "ec-1", "ES256"), public_jwk(ED_1, "ed-1")
    )


@pytest.fixture
async def http(issuer: FakeIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)) as client:
        yield client


@pytest.fixture
def verifier(http: httpx.AsyncClient, clock: FakeClock) -> OidcVerifier:
    return OidcVerifier(CONFIG, http=http, clock=clock)


async def reject(verifier: OidcVerifier, token: str) -> str:
    """The reason verify() gives for refusing token, after checking it leaks no token text."""
    with pytest.raises(TokenRejected) as caught:
        await verifier.verify(token)
    rendered = "".join(traceback.format_exception(caught.value))
    for fragment in [token, *token.split(".")]:
        if len(fragment) >= 8:
            assert fragment not in rendered
    return str(caught.value)


# Valid tokens


async def test_rs256_token_yields_subject_roles_scopes_and_expiry(verifier: OidcVerifier) -> None:
    verified = await verifier.verify(sign(RSA_1))
    assert verified == VerifiedToken(
        subject="user-42",
        roles=frozenset({"operator", "auditor"}),
        scopes=frozenset({"openid", "identities:read"}),
        expires_at=datetime.fromtimestamp(T0 + 300, UTC),
        claims=verified.claims,
    )
    assert verified.claims["iss"] == ISSUER
    with pytest.raises(TypeError):
        verified.claims["sub"] = "someone-else"  # type: ignore[index]


async def test_es256_token_with_scp_list_and_keycloak_roles(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = OidcVerifier(
        replace(CONFIG, roles_claim="realm_access.roles"), http=http, clock=clock
    )
    token = sign(
        EC_1,
        "ES256",
        "ec-1",
        roles=None,
        scope=None,
        scp=["identities:read", "sagas:read"],
        realm_access={"roles": ["admin"]},
    )
    verified = await verifier.verify(token)
    assert verified.roles == {"admin"}
    assert verified.scopes == {"identities:read", "sagas:read"}


async def test_eddsa_and_ps256_tokens_verify(verifier: OidcVerifier) -> None:
    # The RSA JWK has no "alg": PyJWK alone would pin it to RS256 and refuse PS256.
    assert (await verifier.verify(sign(ED_1, "EdDSA", "ed-1"))).subject == "user-42"
    assert (await verifier.verify(sign(RSA_1, "PS256", "rsa-1"))).subject == "user-42"


@pytest.mark.parametrize(
    ("roles_claim", "extra", "roles"),
    [
        ("roles", {"roles": "admin  operator"}, {"admin", "operator"}),
        ("roles", {"roles": None}, set()),
        ("realm_access.roles", {"realm_access": {}}, set()),
        (
            "https://accord.example/roles",
            {"https://accord.example/roles": ["approver"]},
            {"approver"},
        ),
    ],
)
async def test_roles_claim_forms(
    http: httpx.AsyncClient,
    clock: FakeClock,
    roles_claim: str,
    extra: dict[str, Any],
    roles: set[str],
) -> None:
    verifier = OidcVerifier(replace(CONFIG, roles_claim=roles_claim), http=http, clock=clock)
    assert (await verifier.verify(sign(RSA_1, **extra))).roles == roles


async def test_audience_list_containing_ours_is_accepted(verifier: OidcVerifier) -> None:
    token = sign(RSA_1, aud=["account", AUDIENCE])
    assert (await verifier.verify(token)).subject == "user-42"


async def test_clock_skew_within_leeway_is_tolerated(verifier: OidcVerifier) -> None:
    token = sign(RSA_1, exp=int(T0) - 29, nbf=int(T0) + 29, iat=int(T0) + 29)
    assert (await verifier.verify(token)).subject == "user-42"


async def test_token_without_kid_uses_the_only_key_of_its_type(
    http: httpx.AsyncClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    first = OidcVerifier(CONFIG, http=http, clock=clock)
    assert (await first.verify(sign(RSA_1, kid=None))).subject == "user-42"
    issuer.keys.append(public_jwk(RSA_2, "rsa-2"))
    # Two RSA keys: picking one would be guessing.
    second = OidcVerifier(CONFIG, http=http, clock=clock)
    assert await reject(second, sign(RSA_1, kid=None)) == "unknown signing key"


# Claims that must be refused


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(T0) - 31}, "token expired"),
        ({"nbf": int(T0) + 31}, "token not yet valid (nbf)"),
        ({"iat": int(T0) + 31}, "token not yet valid (iat)"),
        ({"iss": "https://login.example.com/realms/acme-evil"}, "wrong issuer"),
        ({"iss": "https://login.example.com/realms/acm"}, "wrong issuer"),
        ({"iss": ISSUER + "/"}, "wrong issuer"),
        ({"aud": "other-api"}, "wrong audience"),
        ({"aud": ["other-api", "account"]}, "wrong audience"),
        ({"aud": AUDIENCE + "x"}, "wrong audience"),
        ({"aud": None}, "missing claim aud"),
        ({"iss": None}, "missing claim iss"),
        ({"sub": None}, "missing claim sub"),
        ({"sub": ""}, "missing claim sub"),
        ({"exp": None}, "missing claim exp"),
        ({"exp": str(int(T0) + 300)}, "malformed exp"),
        ({"exp": True}, "malformed exp"),
        ({"exp": float("nan")}, "malformed exp"),
        ({"exp": 1e300}, "malformed exp"),
        ({"exp": 10**400}, "malformed exp"),
        ({"nbf": float("-inf")}, "malformed nbf"),
        ({"roles": {"admin": True}}, "malformed roles claim"),
        ({"roles": ["admin", 7]}, "malformed roles claim"),
        ({"scope": 12}, "malformed scope claim"),
    ],
)
async def test_bad_claims_are_refused(
    verifier: OidcVerifier, overrides: dict[str, Any], reason: str
) -> None:
    assert await reject(verifier, sign(RSA_1, **overrides)) == reason


# Signatures and algorithms


async def test_alg_none_is_refused(verifier: OidcVerifier) -> None:
    token = segments({"alg": "none", "kid": "rsa-1"}, claims()) + "."
    assert await reject(verifier, token) == "algorithm not allowed"


async def test_hs256_signed_with_the_public_key_pem_is_refused(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    pem = RSA_1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # By hand: PyJWT itself refuses to HMAC with a PEM key, an attacker's tooling does not.
    signing_input = segments(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(roles=["admin"])
    )
    token = f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    assert await reject(verifier, token) == "algorithm not allowed"
    assert issuer.fetches == 0  # refused on the header alone


async def test_alg_not_configured_is_refused(verifier: OidcVerifier) -> None:
    assert await reject(verifier, sign(RSA_1, "RS384")) == "algorithm not allowed"


async def test_alg_pinned_on_the_jwk_must_match(verifier: OidcVerifier, issuer: FakeIssuer) -> None:
    issuer.keys = [public_jwk(RSA_1, "rsa-1", "RS256")]
    assert await reject(verifier, sign(RSA_1, "PS256", "rsa-1")) == "unknown signing key"


async def test_tampered_payload_is_refused(verifier: OidcVerifier) -> None:
    header, _, signature = sign(RSA_1).split(".")
    forged = segments({}, claims(roles=["admin"])).split(".")[1]
    assert await reject(verifier, f"{header}.{forged}.{signature}") == "bad signature"


async def test_token_signed_by_another_key_under_a_known_kid_is_refused(
    verifier: OidcVerifier,
) -> None:
    assert await reject(verifier, sign(ATTACKER, kid="rsa-1")) == "bad signature"


async def test_token_signed_by_an_unknown_key_is_refused(verifier: OidcVerifier) -> None:
    assert await reject(verifier, sign(ATTACKER, kid="attacker")) == "unknown signing key"


async def test_weak_issuer_key_is_refused(verifier: OidcVerifier, issuer: FakeIssuer) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issuer.keys.append(public_jwk(weak, "weak"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        token = sign(weak, kid="weak")
    assert await reject(verifier, token) == "unusable signing key"


async def test_private_and_encryption_keys_in_the_jwks_are_ignored(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    private = public_jwk(RSA_2, "rsa-2") | json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_2))
    issuer.keys = [private, public_jwk(EC_1, "ec-1") | {"use": "enc"}]
    assert await reject(verifier, sign(RSA_2, kid="rsa-2")) == "unknown signing key"
    assert await reject(verifier, sign(EC_1, "ES256", "ec-1")) == "unknown signing key"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        "a.b",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln.c2ln",
        "!!!!.e30.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.%%%%.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln====",
        b64(b"not json") + ".e30.c2ln",
        b64(b'["RS256"]') + ".e30.c2ln",
        b64(b'{"alg": "RS256", "kid": 7}') + ".e30.c2ln",
        b64(b'{"alg": "RS256", "crit": ["exp"]}') + ".e30.c2ln",
        b64(b'{"alg": ["RS256"]}') + ".e30.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\u00e9",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\ud800",
    ],
)
async def test_malformed_tokens_are_refused(verifier: OidcVerifier, token: str) -> None:
    assert await reject(verifier, token) in {"malformed token", "algorithm not allowed"}


async def test_oversized_token_is_refused_before_any_work(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    token = sign(RSA_1, padding="x" * 20_000)
    assert await reject(verifier, token) == "malformed token"
    assert issuer.fetches == 0


async def test_payload_that_is_not_a_json_object_is_refused(verifier: OidcVerifier) -> None:
    header, _, _ = sign(RSA_1).split(".")
    signing_input = f"{header}.{b64(b'[1, 2]')}"
    signature = RSA_1.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert await reject(verifier, f"{signing_input}.{b64(signature)}") == "malformed token"


# Key set fetching, caching, rotation


async def test_key_rotation_picks_up_a_new_key_and_drops_a_removed_one(
    verifier: OidcVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    await verifier.verify(sign(RSA_1))
    issuer.keys.append(public_jwk(RSA_2, "rsa-2"))
    clock.now += 11
    assert (await verifier.verify(sign(RSA_2, kid="rsa-2", now=clock.now))).subject == "user-42"
    assert issuer.fetches == 2

    issuer.keys = [public_jwk(RSA_2, "rsa-2")]
    # Still trusted until the cached set expires.
    assert (await verifier.verify(sign(RSA_1, now=clock.now))).subject == "user-42"
    clock.now += 300
    assert await reject(verifier, sign(RSA_1, now=clock.now)) == "unknown signing key"
    assert (await verifier.verify(sign(RSA_2, kid="rsa-2", now=clock.now))).subject == "user-42"
    assert issuer.fetches == 3


async def test_unknown_kids_refetch_at_most_once_per_interval(
    verifier: OidcVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    await verifier.verify(sign(RSA_1))
    clock.now += 11
    tokens = [sign(ATTACKER, kid=f"attacker-{i}", now=clock.now) for i in range(25)]
    reasons = await asyncio.gather(*(reject(verifier, t) for t in tokens))
    assert set(reasons) == {"unknown signing key"}
    assert issuer.fetches == 2

    clock.now += 9
    await reject(verifier, sign(ATTACKER, kid="attacker-x", now=clock.now))
    assert issuer.fetches == 2
    clock.now += 1
    await reject(verifier, sign(ATTACKER, kid="attacker-y", now=clock.now))
    assert issuer.fetches == 3


async def test_concurrent_verifications_share_one_fetch(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    tokens = [sign(RSA_1, sub=f"user-{i}") for i in range(20)]
    verified = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert {v.subject for v in verified} == {f"user-{i}" for i in range(20)}
    assert issuer.fetches == 1
    assert issuer.timeouts[0] == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


async def test_waiters_share_a_refetch_even_without_a_refetch_interval(
    http: httpx.AsyncClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    verifier = OidcVerifier(replace(CONFIG, min_refetch_interval_s=0), http=http, clock=clock)
    await verifier.verify(sign(RSA_1))
    tokens = [sign(ATTACKER, kid=f"attacker-{i}") for i in range(10)]
    await asyncio.gather(*(reject(verifier, t) for t in tokens))
    assert issuer.fetches == 2


async def test_cache_expiry_triggers_a_refetch(
    verifier: OidcVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    await verifier.verify(sign(RSA_1))
    clock.now += 299
    await verifier.verify(sign(RSA_1, now=clock.now))
    assert issuer.fetches == 1
    clock.now += 1
    await verifier.verify(sign(RSA_1, now=clock.now))
    assert issuer.fetches == 2


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, None, None),
        (404, None, None),
        (302, None, None),
        (200, b"<html>maintenance</html>", None),
        (200, b'{"issuer": "not a key set"}', None),
        (200, b'{"keys": "nope"}', None),
        (200, b"[1, 2]", None),
        (200, None, httpx.ConnectError("refused")),
        (200, None, httpx.ReadTimeout("slow")),
    ],
)
async def test_jwks_failures_reject_without_leaking(
    verifier: OidcVerifier,
    issuer: FakeIssuer,
    clock: FakeClock,
    status: int,
    body: bytes | None,
    error: Exception | None,
) -> None:
    issuer.status, issuer.body, issuer.error = status, body, error
    reasons = await asyncio.gather(*(reject(verifier, sign(RSA_1)) for _ in range(5)))
    assert set(reasons) == {"issuer keys unavailable"}
    assert issuer.fetches == 1  # shared, then backing off instead of hammering the issuer

    issuer.status, issuer.body, issuer.error = 200, None, None
    clock.now += 5
    assert await reject(verifier, sign(RSA_1, now=clock.now)) == "issuer keys unavailable"
    clock.now += 5
    assert (await verifier.verify(sign(RSA_1, now=clock.now))).subject == "user-42"
    assert issuer.fetches == 2


async def test_failed_refetch_keeps_the_cached_keys_until_they_expire(
    verifier: OidcVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    await verifier.verify(sign(RSA_1))
    issuer.status = 503
    clock.now += 11
    assert await reject(verifier, sign(RSA_2, kid="rsa-2", now=clock.now)) == "unknown signing key"
    assert (await verifier.verify(sign(RSA_1, now=clock.now))).subject == "user-42"
    clock.now += 300
    assert await reject(verifier, sign(RSA_1, now=clock.now)) == "issuer keys unavailable"


# Real HTTP


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, list[str]]]:
    """A real JWKS endpoint on 127.0.0.1: its URL, and the paths requested from it so far."""
    body = json.dumps({"keys": [public_jwk(RSA_1, "rsa-1")]}).encode()
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_over_real_http_with_the_real_clock(jwks_server: tuple[str, list[str]]) -> None:
    url, requested = jwks_server
    verifier = OidcVerifier(replace(CONFIG, jwks_url=url))
    try:
        verified = await verifier.verify(sign(RSA_1, now=time.time()))
        assert verified.subject == "user-42"
        assert await reject(verifier, sign(RSA_1, now=time.time() - 3600)) == "token expired"
    finally:
        await verifier.aclose()
    assert requested == ["/certs"]
    assert verifier._http.is_closed  # it made the client, so it closed it


async def test_connection_refused_rejects_the_token() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = OidcVerifier(replace(CONFIG, jwks_url=f"http://127.0.0.1:{port}/certs"))
    try:
        assert await reject(verifier, sign(RSA_1, now=time.time())) == "issuer keys unavailable"
    finally:
        await verifier.aclose()


async def test_aclose_leaves_an_injected_client_open(
    verifier: OidcVerifier, http: httpx.AsyncClient
) -> None:
    await verifier.aclose()
    assert not http.is_closed


# Configuration


@pytest.mark.parametrize(
    "changes",
    [
        {"algorithms": ("none",)},
        {"algorithms": ("RS256", "HS256")},
        {"algorithms": ()},
        {"issuer": ""},
        {"audience": ""},
        {"jwks_cache_s": 0},
        {"leeway_s": -1},
    ],
)
def test_unsafe_configuration_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        replace(CONFIG, **changes)
