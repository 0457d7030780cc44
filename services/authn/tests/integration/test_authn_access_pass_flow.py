"""A Temporary Access Pass end to end on a real PostgreSQL, through authn's HTTP API with real
API-token security: a help desk issues the pass, the identity provider the new hire signs in
to redeems it, and with the enrolment grant it enrols the hire's first factor (a real TOTP
code confirms it); the grant opens nothing more once the hire holds a factor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from accord.authn import access_pass_api, factors_api
from accord.authn.domain import totp
from accord.authn.settings import AuthnSettings
from accord.stack.testing import migrated_pool

from .test_authn_factors_store import (
    ADA,
    ADMIN,
    EVE,
    IDP,
    KEYS,
    ORIGIN,
    SCHEMA,
    problem,
    runtime_on,
    secured_app,
)

pytestmark = pytest.mark.integration
HIRE = "ada-api"  # ADA's subject: the hire herself has no factor yet


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authn.migrations"]) as created:
        yield created


@pytest_asyncio.fixture(loop_scope="session")
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    await pool.execute("TRUNCATE access_passes, enrolment_grants, mfa_credentials")
    settings = AuthnSettings(
        credential_keys=SecretStr(KEYS), webauthn_rp_id="localhost", webauthn_origins=ORIGIN
    )
    runtime = runtime_on(pool, settings)
    app = secured_app()
    factors_api.configure(app, runtime, settings)
    access_pass_api.configure(app, runtime, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as created:
        yield created


async def test_a_pass_lets_the_identity_provider_enrol_the_first_factor(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    passes = f"/v1/users/{HIRE}/access-passes"
    problem(await client.post(passes, headers=ADA), 403)  # not a help desk
    issued = await client.post(passes, json={"lifetime": "PT2H"}, headers=ADMIN)
    assert issued.status_code == 201, issued.text
    code = issued.json()["code"]
    row = await pool.fetchrow("SELECT * FROM access_passes WHERE user_id = $1", HIRE)
    assert row is not None
    assert code.encode() not in row["code_hash"]
    assert code.replace("-", "").encode() not in row["code_hash"]
    shown = await client.get(passes, headers=ADMIN)
    assert shown.status_code == 200
    assert code not in shown.text

    # Without a grant an identity provider may not enrol anyone.
    enrol = f"/v1/mfa/{HIRE}/totp"
    problem(await client.post(enrol, headers=IDP), 403)
    wrong = {"user_id": HIRE, "code": "2222-3333-4444"}
    problem(await client.post("/v1/access-passes/redeem", json=wrong, headers=IDP), 401)
    # A person redeems only their own pass; Eve's try neither answers differently nor counts.
    right_but_eve = {"user_id": HIRE, "code": code}
    problem(await client.post("/v1/access-passes/redeem", json=right_but_eve, headers=EVE), 401)
    redeemed = await client.post(
        "/v1/access-passes/redeem", json={"user_id": HIRE, "code": code}, headers=IDP
    )
    assert redeemed.status_code == 200, redeemed.text
    grant = {"Accord-Enrolment-Grant": redeemed.json()["enrolment_grant"], **IDP}
    assert (
        await pool.fetchval("SELECT failed_attempts FROM access_passes WHERE user_id = $1", HIRE)
        == 1
    )
    problem(await client.post("/v1/mfa/eve-api/totp", headers=grant), 403)  # not Eve's

    enrolled = await client.post(enrol, json={"label": "phone"}, headers=grant)
    assert enrolled.status_code == 201, enrolled.text
    secret = totp.TotpSecret(enrolled.json()["secret"])
    step = totp.time_step(datetime.now(UTC).timestamp())
    confirm = f"/v1/mfa/{HIRE}/totp/{enrolled.json()['credential_id']}/confirm"
    problem(await client.post(confirm, json={"code": totp.code_at(secret, step)}, headers=IDP), 403)
    confirmed = await client.post(confirm, json={"code": totp.code_at(secret, step)}, headers=grant)
    assert confirmed.status_code == 200, confirmed.text

    # The hire holds a factor now: the grant is for a first one only.
    problem(await client.post(enrol, headers=grant), 403)
    options = f"/v1/mfa/{HIRE}/webauthn/registration-options"
    problem(await client.post(options, headers=grant), 403)
    # One-time: the pass is spent.
    again = {"user_id": HIRE, "code": code}
    problem(await client.post("/v1/access-passes/redeem", json=again, headers=IDP), 401)
    assert (await client.get(passes, headers=ADMIN)).json()["state"] == "used"
    revoked = await client.delete(passes, headers=ADMIN)
    assert revoked.status_code == 204
    assert await pool.fetchval("SELECT count(*) FROM enrolment_grants") == 0
