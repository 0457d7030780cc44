"""MFA factors on a real PostgreSQL: the tables, the factor logic and the HTTP API, with a
software authenticator and real TOTP codes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pydantic import SecretStr

from accord.authn import factors, factors_api
from accord.authn.adapters import credentials as store
from accord.authn.adapters import identities, lockouts
from accord.authn.domain import totp
from accord.authn.domain.sealing import Keyring, generate_key
from accord.authn.domain.webauthn_ceremonies import RelyingParty
from accord.authn.factors import FactorConfig, Factors
from accord.authn.settings import AuthnSettings
from accord.authn.testing import SoftwareAuthenticator
from accord.events import new_event
from accord.events.catalogue.authn import AuthnFailed, AuthnSucceeded, MfaEnrolled, MfaRemoved
from accord.runtime.http import create_app
from accord.runtime.problems import PROBLEM_JSON
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Role
from accord.runtime.service import Runtime
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration
SCHEMA = "authn"
SOURCE = "accord/authn"
ORIGIN = "http://localhost:8705"
KEYS = generate_key("k1")
CONFIG = FactorConfig(
    keyring=Keyring.parse(KEYS),
    totp_issuer="Accord Test",
    relying_party=RelyingParty("localhost", "Accord", (ORIGIN,)),
    challenge_ttl=timedelta(minutes=5),
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authn.migrations"]) as created:
        yield created


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logic(clock: Clock) -> Factors:
    return Factors(CONFIG, source=SOURCE, clock=clock)


def code_now(secret: totp.TotpSecret, clock: Callable[[], datetime], offset: int = 0) -> str:
    return totp.code_at(secret, totp.time_step(clock().timestamp()) + offset)


def wrong_code(secret: totp.TotpSecret, clock: Callable[[], datetime]) -> str:
    near = {code_now(secret, clock, offset) for offset in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


async def enrolled_totp(pool: asyncpg.Pool, logic: Factors, user_id: str) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        new = await logic.enrol_totp(conn, user_id, "phone")
        await logic.confirm_totp(
            conn, user_id, new.credential_id, code_now(new.secret, logic.clock)
        )
    return new


async def registered(
    pool: asyncpg.Pool, logic: Factors, user_id: str, authenticator: SoftwareAuthenticator
) -> str:
    async with pool.acquire() as conn, conn.transaction():
        options = await logic.registration_options(conn, user_id)
    async with pool.acquire() as conn, conn.transaction():
        done = await logic.register_webauthn(
            conn, user_id, authenticator.create(options, ORIGIN), "key"
        )
    assert done.credential_id is not None, done.refused
    return done.credential_id


async def assert_with(
    pool: asyncpg.Pool, logic: Factors, user_id: str, authenticator: SoftwareAuthenticator
) -> factors.Verification:
    async with pool.acquire() as conn, conn.transaction():
        options = await logic.authentication_options(conn, user_id)
    assert options is not None
    async with pool.acquire() as conn, conn.transaction():
        return await logic.verify_webauthn(conn, user_id, authenticator.get(options, ORIGIN))


# --- tables ----------------------------------------------------------------------------------


async def test_the_sealed_column_holds_no_plaintext_and_listings_no_secrets(
    pool: asyncpg.Pool, logic: Factors
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        new = await logic.enrol_totp(conn, "ada-seal", "phone")
        row = await conn.fetchrow(
            "SELECT sealed_secret, key_id FROM mfa_credentials WHERE id = $1", new.credential_id
        )
        listed = await store.list_for_user(conn, "ada-seal")

    stored = bytes(row["sealed_secret"])
    assert row["key_id"] == "k1"
    assert new.secret.value.encode() not in stored
    assert base64.b32decode(new.secret.value) not in stored
    assert [item["id"] for item in listed] == [new.credential_id]
    assert set(listed[0]) == {
        "id",
        "factor",
        "label",
        "status",
        "created_at",
        "confirmed_at",
        "last_used_at",
        "expires_at",
    }
    assert listed[0]["status"] == "pending"
    assert new.provisioning_uri.startswith("otpauth://totp/Accord%20Test:ada-seal?")


async def test_the_database_refuses_a_totp_without_its_secret(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO mfa_credentials (id, user_id, factor, status)"
                " VALUES ('x1', 'ada', 'totp', 'pending')"
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO mfa_credentials (id, user_id, factor, status, sealed_secret, key_id)"
                " VALUES ('x2', 'ada', 'totp', 'active', '\\x00', 'k1')"
            )


async def test_a_webauthn_credential_id_is_registered_once(pool: asyncpg.Pool) -> None:
    fields: dict[str, Any] = {"label": None, "webauthn_id": b"\x01" * 16, "public_key": b"k"}
    async with pool.acquire() as conn:
        await store.insert_webauthn(
            conn, credential_id="w1", user_id="ada-dup", sign_count=0, **fields
        )
        with pytest.raises(store.DuplicateCredential):
            await store.insert_webauthn(
                conn, credential_id="w2", user_id="eve-dup", sign_count=0, **fields
            )


async def test_a_challenge_is_taken_once_and_never_after_it_expires(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    later = now + timedelta(minutes=1)
    async with pool.acquire() as conn:
        for n, expiry in ((1, later), (2, now - timedelta(seconds=1))):
            await store.save_challenge(
                conn,
                challenge_id=f"c{n}-take",
                user_id="ada-take",
                purpose="authentication",
                challenge=bytes([n]) * 32,
                expires_at=expiry,
                now=now - timedelta(minutes=1),
            )
        take: dict[str, Any] = {"user_id": "ada-take", "now": now}
        assert not await store.take_challenge(
            conn, purpose="registration", challenge=b"\x01" * 32, **take
        )
        assert not await store.take_challenge(
            conn, purpose="authentication", challenge=b"\x01" * 32, user_id="eve", now=now
        )
        assert await store.take_challenge(
            conn, purpose="authentication", challenge=b"\x01" * 32, **take
        )
        assert not await store.take_challenge(
            conn, purpose="authentication", challenge=b"\x01" * 32, **take
        )
        assert not await store.take_challenge(
            conn, purpose="authentication", challenge=b"\x02" * 32, **take
        )
        left = await conn.fetchval("SELECT count(*) FROM mfa_challenges WHERE user_id = 'ada-take'")
    assert left == 0


async def test_only_the_newest_challenges_of_an_identity_wait(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        for n in range(store.MAX_CHALLENGES + 3):
            await store.save_challenge(
                conn,
                challenge_id=f"cap-{n}",
                user_id="ada-cap",
                purpose="registration",
                challenge=bytes([n + 50]) * 32,
                expires_at=now + timedelta(minutes=5, seconds=n),
                now=now,
            )
        kept = await conn.fetch(
            "SELECT id FROM mfa_challenges WHERE user_id = 'ada-cap' ORDER BY id"
        )
    assert len(kept) == store.MAX_CHALLENGES
    assert "cap-7" in {r["id"] for r in kept}


# --- TOTP ------------------------------------------------------------------------------------


async def test_totp_enrolment_is_confirmed_by_a_right_code_only(
    pool: asyncpg.Pool, logic: Factors, clock: Clock
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        new = await logic.enrol_totp(conn, "ada-confirm", "phone")
    wrong = wrong_code(new.secret, clock)

    async with pool.acquire() as conn:
        with pytest.raises(factors.WrongCode, match="wrong code"):
            await logic.confirm_totp(conn, "ada-confirm", new.credential_id, wrong)
        with pytest.raises(factors.NotFound):
            await logic.confirm_totp(conn, "eve", new.credential_id, code_now(new.secret, clock))
        events = await logic.confirm_totp(
            conn, "ada-confirm", new.credential_id, code_now(new.secret, clock)
        )
        with pytest.raises(factors.Conflict, match="confirmed already"):
            await logic.confirm_totp(
                conn, "ada-confirm", new.credential_id, code_now(new.secret, clock)
            )
        listed = await store.list_for_user(conn, "ada-confirm")

    assert [e.data for e in events] == [
        MfaEnrolled(
            user_id="ada-confirm", credential_id=new.credential_id, factor="totp", label="phone"
        )
    ]
    assert events[0].source == SOURCE
    assert listed[0]["status"] == "active"
    assert listed[0]["expires_at"] is None


async def test_an_enrolment_past_its_ttl_is_void(
    pool: asyncpg.Pool, logic: Factors, clock: Clock
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        new = await logic.enrol_totp(conn, "ada-late", None)
    clock.now += timedelta(minutes=6)

    async with pool.acquire() as conn:
        with pytest.raises(factors.EnrolmentExpired, match="enrol again"):
            await logic.confirm_totp(
                conn, "ada-late", new.credential_id, code_now(new.secret, clock)
            )
        await logic.enrol_totp(conn, "ada-late", None)  # sweeps the expired one
        left = [r["id"] for r in await store.list_for_user(conn, "ada-late")]
    assert new.credential_id not in left
    assert len(left) == 1


async def test_a_totp_code_verifies_once(pool: asyncpg.Pool, logic: Factors, clock: Clock) -> None:
    new = await enrolled_totp(pool, logic, "ada-otp")
    clock.now += timedelta(seconds=60)
    code = code_now(new.secret, clock)

    async with pool.acquire() as conn, conn.transaction():
        first = await logic.verify_totp(conn, "ada-otp", code)
    async with pool.acquire() as conn, conn.transaction():
        again = await logic.verify_totp(conn, "ada-otp", code)
        wrong = await logic.verify_totp(conn, "ada-otp", wrong_code(new.secret, clock))
        listed = await store.list_for_user(conn, "ada-otp")

    assert (first.verified, first.factor, first.credential_id) == (True, "totp", new.credential_id)
    assert [e.data for e in first.events] == [
        AuthnSucceeded(user_id="ada-otp", idp="accord", methods=("otp",))
    ]
    assert (again.verified, again.reason) == (False, "code already used")
    assert [e.data for e in again.events] == [
        AuthnFailed(user_id="ada-otp", idp="accord", methods=("otp",), reason="code already used")
    ]
    assert wrong.verified is False
    assert listed[0]["last_used_at"] is not None


async def test_a_locked_identity_verifies_nothing(
    pool: asyncpg.Pool, logic: Factors, clock: Clock
) -> None:
    new = await enrolled_totp(pool, logic, "ada-locked")
    clock.now += timedelta(seconds=60)
    async with pool.acquire() as conn, conn.transaction():
        await lockouts.insert_lockout(conn, "lock-f", "ada-locked", "test", 5, clock())
        result = await logic.verify_totp(conn, "ada-locked", code_now(new.secret, clock))
    assert (result.verified, result.reason) == (False, "the identity is locked")


async def test_the_confirming_code_cannot_sign_in(
    pool: asyncpg.Pool, logic: Factors, clock: Clock
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        new = await logic.enrol_totp(conn, "ada-reuse", None)
        code = code_now(new.secret, clock)
        await logic.confirm_totp(conn, "ada-reuse", new.credential_id, code)
        result = await logic.verify_totp(conn, "ada-reuse", code)
    assert (result.verified, result.reason) == (False, "code already used")


async def test_verifying_without_a_factor_fails_and_counts(
    pool: asyncpg.Pool, logic: Factors
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        result = await logic.verify_totp(conn, "nobody", "123456")
    assert (result.verified, result.reason) == (False, "no active TOTP factor")
    assert result.events[0].type == "authn.failed"


async def test_a_sealed_secret_moved_to_another_row_does_not_open(
    pool: asyncpg.Pool, logic: Factors, clock: Clock
) -> None:
    ada = await enrolled_totp(pool, logic, "ada-move")
    eve = await enrolled_totp(pool, logic, "eve-move")
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE mfa_credentials SET sealed_secret ="
            " (SELECT sealed_secret FROM mfa_credentials WHERE id = $1) WHERE id = $2",
            ada.credential_id,
            eve.credential_id,
        )
        with pytest.raises(factors.KeyUnavailable):
            await logic.verify_totp(conn, "eve-move", code_now(ada.secret, clock, 1))


async def test_an_inactive_identity_neither_enrols_nor_verifies(
    pool: asyncpg.Pool, logic: Factors, clock: Clock
) -> None:
    new = await enrolled_totp(pool, logic, "ada-gone")
    async with pool.acquire() as conn, conn.transaction():
        await identities.upsert(conn, "ada-gone", sequence=1, status="deleted")
        with pytest.raises(factors.Conflict, match="deleted"):
            await logic.enrol_totp(conn, "ada-gone", None)
        result = await logic.verify_totp(conn, "ada-gone", code_now(new.secret, clock, 1))
    assert (result.verified, result.reason) == (False, "the identity is deleted")


# --- WebAuthn --------------------------------------------------------------------------------


async def test_webauthn_registers_verifies_and_refuses_a_clone(
    pool: asyncpg.Pool, logic: Factors
) -> None:
    authenticator = SoftwareAuthenticator()
    credential_id = await registered(pool, logic, "ada-key", authenticator)
    clone = authenticator.clone()

    first = await assert_with(pool, logic, "ada-key", authenticator)
    cloned = await assert_with(pool, logic, "ada-key", clone)
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "SELECT sign_count FROM mfa_credentials WHERE id = $1", credential_id
        )

    assert (first.verified, first.credential_id) == (True, credential_id)
    assert first.events[0].data == AuthnSucceeded(user_id="ada-key", idp="accord", methods=("hwk",))
    assert cloned.verified is False
    assert "cloned" in str(cloned.reason)
    assert cloned.events[0].type == "authn.failed"
    assert count == 1


async def test_an_assertion_serves_once(pool: asyncpg.Pool, logic: Factors, clock: Clock) -> None:
    authenticator = SoftwareAuthenticator(count_step=0)
    await registered(pool, logic, "ada-once", authenticator)
    async with pool.acquire() as conn, conn.transaction():
        options = await logic.authentication_options(conn, "ada-once")
    assert options is not None
    response = authenticator.get(options, ORIGIN)

    async with pool.acquire() as conn, conn.transaction():
        first = await logic.verify_webauthn(conn, "ada-once", response)
        replay = await logic.verify_webauthn(conn, "ada-once", response)
        stranger = await logic.verify_webauthn(conn, "eve-once", response)
    async with pool.acquire() as conn, conn.transaction():
        options = await logic.authentication_options(conn, "ada-once")
    assert options is not None
    clock.now += timedelta(minutes=6)
    async with pool.acquire() as conn, conn.transaction():
        late = await logic.verify_webauthn(conn, "ada-once", authenticator.get(options, ORIGIN))

    assert first.verified
    assert replay.reason == stranger.reason == late.reason == "unknown, used or expired challenge"


async def test_a_failed_registration_uses_its_challenge_up(
    pool: asyncpg.Pool, logic: Factors
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        options = await logic.registration_options(conn, "ada-bad")
    response = SoftwareAuthenticator().create(options, "https://evil.example.net")

    async with pool.acquire() as conn, conn.transaction():
        done = await logic.register_webauthn(conn, "ada-bad", response, None)
    async with pool.acquire() as conn:
        with pytest.raises(factors.NotFound):
            await logic.register_webauthn(conn, "ada-bad", response, None)
        assert await logic.authentication_options(conn, "ada-bad") is None

    assert done.credential_id is None
    assert done.refused == "the origin is not one of the relying party's"
    assert done.events == []


async def test_registration_options_exclude_the_identitys_credentials(
    pool: asyncpg.Pool, logic: Factors
) -> None:
    authenticator = SoftwareAuthenticator()
    await registered(pool, logic, "ada-excl", authenticator)
    async with pool.acquire() as conn, conn.transaction():
        options = await logic.registration_options(conn, "ada-excl")

    excluded = options["excludeCredentials"]
    assert [c["id"] for c in excluded] == [
        base64.urlsafe_b64encode(cid).rstrip(b"=").decode() for cid in authenticator.credentials
    ]


# --- removal ---------------------------------------------------------------------------------


async def test_removing_factors_announces_only_enrolled_ones(
    pool: asyncpg.Pool, logic: Factors
) -> None:
    totp_factor = await enrolled_totp(pool, logic, "ada-leaver")
    key = await registered(pool, logic, "ada-leaver", SoftwareAuthenticator())
    async with pool.acquire() as conn, conn.transaction():
        pending = await logic.enrol_totp(conn, "ada-leaver", None)
    cause = new_event(
        AuthnFailed(user_id="ada-leaver", idp="okta", reason="test cause"), source="urn:test"
    )

    async with pool.acquire() as conn, conn.transaction():
        events = await factors.remove_all_factors(
            conn, "ada-leaver", "leaver", source=SOURCE, causation=cause
        )
        left = await store.list_for_user(conn, "ada-leaver")
        again = await factors.remove_all_factors(conn, "ada-leaver", "leaver", source=SOURCE)

    assert [e.data for e in events] == [
        MfaRemoved(
            user_id="ada-leaver",
            credential_id=totp_factor.credential_id,
            factor="totp",
            reason="leaver",
        ),
        MfaRemoved(user_id="ada-leaver", credential_id=key, factor="webauthn", reason="leaver"),
    ]
    assert {e.correlationid for e in events} == {cause.correlationid}
    assert pending.credential_id not in {e.data.credential_id for e in events}  # type: ignore[attr-defined]
    assert left == []
    assert again == []


async def test_removing_one_factor(pool: asyncpg.Pool, logic: Factors) -> None:
    active = await enrolled_totp(pool, logic, "ada-rm")
    async with pool.acquire() as conn, conn.transaction():
        pending = await logic.enrol_totp(conn, "ada-rm", None)
        quiet = await logic.remove(conn, "ada-rm", pending.credential_id, "removed by its owner")
        loud = await logic.remove(conn, "ada-rm", active.credential_id, "removed by its owner")
        with pytest.raises(factors.NotFound):
            await logic.remove(conn, "eve", active.credential_id, "removed by its owner")

    assert quiet == []
    assert [e.type for e in loud] == ["mfa.removed"]


# --- HTTP API --------------------------------------------------------------------------------

TOKENS = {
    "acc_00000000000000a1_" + "A" * 43: ("ada-api", Role.REQUESTER),
    "acc_00000000000000b2_" + "B" * 43: ("eve-api", Role.REQUESTER),
    "acc_00000000000000c3_" + "C" * 43: ("root", Role.ADMIN),
    "acc_00000000000000d4_" + "D" * 43: ("okta", Role.IDENTITY_PROVIDER),
}
ADA, EVE, ADMIN, IDP = ({"Authorization": f"Bearer {token}"} for token in TOKENS)


class FakeTokens:
    async def verify(self, token: str) -> Caller:
        if token not in TOKENS:
            raise InvalidToken("unknown API token")
        subject, role = TOKENS[token]
        return Caller(subject, frozenset({role}), "api-token", token[4:20])


async def _ready() -> dict[str, Any]:
    return {"ready": True}


def runtime_on(pool: asyncpg.Pool, settings: AuthnSettings) -> Runtime:
    """A runtime of authn on this pool, with no producer (events stay in the outbox)."""
    return Runtime(
        name="authn",
        settings=settings,
        pool=pool,
        producer=cast(AIOKafkaProducer, None),
        schema=SCHEMA,
    )


def secured_app() -> FastAPI:
    """An app of authn whose callers are the API tokens of TOKENS."""
    app = create_app("authn", _ready)
    limiter = RateLimiter(1000.0, 1000)
    app.state.security = ApiSecurity(
        cast(TokenStore, FakeTokens()), None, per_caller=limiter, failures=limiter
    )
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    settings = AuthnSettings(
        credential_keys=SecretStr(KEYS), webauthn_rp_id="localhost", webauthn_origins=ORIGIN
    )
    runtime = runtime_on(pool, settings)
    app = secured_app()
    factors_api.configure(app, runtime, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as created:
        yield created


async def outbox(pool: asyncpg.Pool, key: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await pool.fetch(
        "SELECT topic, value FROM outbox WHERE key = $1 ORDER BY id", key.encode()
    )
    return [(r["topic"], json.loads(r["value"])) for r in rows]


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    detail: str = response.json()["detail"]
    return detail


async def test_api_totp_enrol_confirm_verify_and_remove(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    enrolled = await client.post("/v1/mfa/ada-api/totp", json={"label": "phone"}, headers=ADA)
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    secret, credential_id = totp.TotpSecret(body["secret"]), body["credential_id"]
    assert body["status"] == "pending"
    assert body["provisioning_uri"].startswith("otpauth://totp/")
    confirm = f"/v1/mfa/ada-api/totp/{credential_id}/confirm"
    now = datetime.now(UTC).timestamp()
    right = totp.code_at(secret, totp.time_step(now))
    wrong = wrong_code(secret, lambda: datetime.fromtimestamp(now, UTC))

    assert "wrong code" in problem(
        await client.post(confirm, json={"code": wrong}, headers=ADA), 400
    )
    problem(await client.post(confirm, json={"code": right}, headers=EVE), 403)
    problem(await client.post(confirm, json={"code": "12"}, headers=ADA), 400)
    confirmed = await client.post(confirm, json={"code": right}, headers=ADA)
    assert confirmed.json() == {
        "credential_id": credential_id,
        "factor": "totp",
        "status": "active",
    }
    problem(await client.post(confirm, json={"code": right}, headers=ADA), 409)

    listed = await client.get("/v1/mfa/ada-api", headers=ADMIN)
    assert [i["id"] for i in listed.json()["items"]] == [credential_id]
    assert secret.value not in listed.text
    problem(await client.get("/v1/mfa/ada-api", headers=EVE), 403)

    later = totp.code_at(secret, totp.time_step(now) + 1)
    ok = await client.post(
        "/v1/authn/verify", json={"user_id": "ada-api", "totp_code": later}, headers=IDP
    )
    replay = await client.post(
        "/v1/authn/verify", json={"user_id": "ada-api", "totp_code": later}, headers=IDP
    )
    assert ok.json() == {"verified": True, "factor": "totp", "credential_id": credential_id}
    assert replay.json() == {"verified": False, "factor": "totp", "reason": "code already used"}
    problem(
        await client.post(
            "/v1/authn/verify", json={"user_id": "ada-api", "totp_code": later}, headers=EVE
        ),
        403,
    )

    removed = await client.delete(f"/v1/mfa/ada-api/{credential_id}", headers=ADA)
    assert removed.status_code == 204
    problem(await client.delete(f"/v1/mfa/ada-api/{credential_id}", headers=ADA), 404)

    topics = [topic for topic, _ in await outbox(pool, "ada-api")]
    assert topics == ["mfa.enrolled", "authn.succeeded", "authn.failed", "mfa.removed"]
    events = dict(await outbox(pool, "ada-api"))
    assert events["mfa.removed"]["reason"] == "removed by its owner"
    assert events["authn.failed"]["idp"] == "accord"


async def test_api_an_expired_enrolment_is_gone(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    enrolled = (await client.post("/v1/mfa/eve-api/totp", headers=EVE)).json()
    await pool.execute(
        "UPDATE mfa_credentials SET expires_at = now() - interval '1 second' WHERE id = $1",
        enrolled["credential_id"],
    )
    code = totp.code_at(
        totp.TotpSecret(enrolled["secret"]), totp.time_step(datetime.now(UTC).timestamp())
    )

    response = await client.post(
        f"/v1/mfa/eve-api/totp/{enrolled['credential_id']}/confirm",
        json={"code": code},
        headers=EVE,
    )

    assert "expired" in problem(response, 410)


async def test_api_webauthn_register_and_verify(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    authenticator = SoftwareAuthenticator()
    options = await client.post("/v1/mfa/root-key/webauthn/registration-options", headers=ADMIN)
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json(), ORIGIN)
    registered = await client.post(
        "/v1/mfa/root-key/webauthn/registrations",
        json={"credential": credential, "label": "YubiKey"},
        headers=ADMIN,
    )
    assert registered.status_code == 201, registered.text
    credential_id = registered.json()["credential_id"]
    problem(
        await client.post(
            "/v1/mfa/root-key/webauthn/registrations",
            json={"credential": credential},
            headers=ADMIN,
        ),
        404,
    )

    asked = await client.post(
        "/v1/authn/webauthn/authentication-options", json={"user_id": "root-key"}, headers=IDP
    )
    assertion = authenticator.get(asked.json(), ORIGIN)
    verified = await client.post(
        "/v1/authn/verify", json={"user_id": "root-key", "webauthn": assertion}, headers=IDP
    )
    assert verified.json() == {
        "verified": True,
        "factor": "webauthn",
        "credential_id": credential_id,
    }
    both = {"user_id": "root-key", "webauthn": assertion, "totp_code": "123456"}
    problem(await client.post("/v1/authn/verify", json=both, headers=IDP), 400)
    problem(await client.post("/v1/authn/verify", json={"user_id": "root-key"}, headers=IDP), 400)
    problem(
        await client.post(
            "/v1/authn/webauthn/authentication-options", json={"user_id": "nobody"}, headers=IDP
        ),
        404,
    )

    topics = [topic for topic, _ in await outbox(pool, "root-key")]
    assert topics == ["mfa.enrolled", "authn.succeeded"]


async def test_api_a_registration_that_does_not_verify_is_400_and_spent(
    client: httpx.AsyncClient,
) -> None:
    options = await client.post("/v1/mfa/eve-api/webauthn/registration-options", headers=EVE)
    credential = SoftwareAuthenticator().create(options.json(), "https://evil.example.net")
    url = "/v1/mfa/eve-api/webauthn/registrations"

    assert "origin" in problem(
        await client.post(url, json={"credential": credential}, headers=EVE), 400
    )
    problem(await client.post(url, json={"credential": credential}, headers=EVE), 404)
    problem(await client.post(url, json={"credential": credential, "extra": 1}, headers=EVE), 400)


async def test_api_documents_every_status_it_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    mfa = {
        (path, method): operation
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if "mfa" in operation.get("tags", [])
    }

    assert len(mfa) == 8
    statuses = {key: set(op["responses"]) for key, op in mfa.items()}
    assert {"201", "409"} <= statuses[("/v1/mfa/{user_id}/totp", "post")]
    assert {"200", "400", "404", "409", "410"} <= statuses[
        ("/v1/mfa/{user_id}/totp/{credential_id}/confirm", "post")
    ]
    assert {"201", "400", "404", "409"} <= statuses[
        ("/v1/mfa/{user_id}/webauthn/registrations", "post")
    ]
    assert {"204", "404"} <= statuses[("/v1/mfa/{user_id}/{credential_id}", "delete")]
    assert all({"401", "403"} <= s for s in statuses.values())


async def test_api_a_second_factor_needs_a_fresh_proof_of_the_first(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    user, headers = "ada-api", ADA
    first = (await client.post(f"/v1/mfa/{user}/totp", headers=headers)).json()
    secret = totp.TotpSecret(first["secret"])
    step = totp.time_step(datetime.now(UTC).timestamp())
    confirm = f"/v1/mfa/{user}/totp/{first['credential_id']}/confirm"
    confirmed = await client.post(confirm, json={"code": totp.code_at(secret, step)}, headers=ADA)
    assert confirmed.status_code == 200, confirmed.text
    # Confirming counts as no use: with an active factor and no recent proof, a stolen
    # session cannot add an authenticator of its own.
    await pool.execute("UPDATE mfa_credentials SET last_used_at = NULL WHERE user_id = $1", user)
    assert "verify" in problem(await client.post(f"/v1/mfa/{user}/totp", headers=headers), 403)
    options = f"/v1/mfa/{user}/webauthn/registration-options"
    problem(await client.post(options, headers=headers), 403)
    # A help desk (mfa:manage) needs no proof.
    assert (await client.post(options, headers=ADMIN)).status_code == 200
    # The owner proves the factor it holds, and may add another within the window.
    proof = {"user_id": user, "totp_code": totp.code_at(secret, step + 1)}
    verified = await client.post("/v1/authn/verify", json=proof, headers=headers)
    assert verified.json()["verified"] is True
    assert (await client.post(options, headers=headers)).status_code == 200
    await pool.execute(
        "UPDATE mfa_credentials SET last_used_at = now() - interval '6 minutes' WHERE user_id = $1",
        user,
    )
    problem(await client.post(options, headers=headers), 403)
