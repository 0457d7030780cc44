"""Shared Signals on a real PostgreSQL and real sockets: Accord's transmitter and receiver
served by uvicorn, and a partner (a relying party and an identity provider in one small
app) that verifies every pushed SET against Accord's JWKS over HTTP and serves the JWKS
of the identity provider's own signing key."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import jwt
import pytest
import pytest_asyncio
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from accord.authn import delivery, ssf_api, transmitter
from accord.authn.adapters import identities
from accord.authn.bootstrap import postgres_ports
from accord.authn.domain import set_tokens as st
from accord.authn.domain import streams as ss
from accord.authn.domain.lockout import LockoutPolicy
from accord.authn.handlers import lockout
from accord.authn.receiver import JwksCache, ReceivedSignal, Receiver, load_transmitters
from accord.authn.settings import AuthnSettings
from accord.authn.ssf_keys import SigningKey, generate_signing_key, public_jwk
from accord.events import AuthnFailed, Envelope, SessionRevoked, new_event
from accord.runtime.http import create_app, make_server, secure
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Role
from accord.runtime.service import Runtime
from accord.stack.network import free_port
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
IDP = "https://idp.example.com/"
AUDIENCE = "https://accord.example.com/ssf"
PARTNER_SECRET = "Bearer partner-secret-4711"
CALLERS = {
    "acc_rp1": Caller("rp-1", frozenset({Role.SSF_RECEIVER}), "api-token", "t-rp1"),
    "acc_rp2": Caller("rp-2", frozenset({Role.SSF_RECEIVER}), "api-token", "t-rp2"),
    "acc_admin": Caller("root", frozenset({Role.ADMIN}), "api-token", "t-admin"),
    "acc_idp": Caller("okta", frozenset({Role.IDENTITY_PROVIDER}), "api-token", "t-idp"),
    "acc_bob": Caller("bob", frozenset({Role.REQUESTER}), "api-token", "t-bob"),
}


class FakeTokens:
    async def verify(self, token: str) -> Caller:
        if token not in CALLERS:
            raise InvalidToken("unknown API token")
        return CALLERS[token]


class Partner:
    """A relying party (receives pushed SETs) and an identity provider (serves its JWKS)."""

    def __init__(self) -> None:
        self.idp_key = ec.generate_private_key(ec.SECP256R1())
        self.idp_kid = "idp-1"
        self.accord_jwks_url = ""
        self.received: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.answers: list[tuple[int, dict[str, str] | None]] = []
        self.app = FastAPI()
        self.app.add_api_route("/jwks.json", self.jwks, methods=["GET"])
        self.app.add_api_route("/events", self.events, methods=["POST"])

    async def jwks(self) -> dict[str, Any]:
        public = public_jwk(self.idp_key.public_key())
        return {"keys": [{**public, "kid": self.idp_kid, "use": "sig", "alg": "ES256"}]}

    async def events(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("authorization"))
        if self.answers:
            status, body = self.answers.pop(0)
            return JSONResponse(body, status) if body else Response(status_code=status)
        if request.headers.get("content-type") != "application/secevent+jwt":
            return JSONResponse({"err": "invalid_request", "description": "content type"}, 400)
        token = (await request.body()).decode()
        async with httpx.AsyncClient() as client:
            keys = jwt.PyJWKSet.from_dict((await client.get(self.accord_jwks_url)).json())
        header = jwt.get_unverified_header(token)
        try:
            claims = jwt.decode(
                token, keys[header["kid"]].key, algorithms=["ES256"], options={"verify_aud": False}
            )
        except (jwt.PyJWTError, KeyError):
            return JSONResponse({"err": "invalid_key", "description": "bad signature"}, 400)
        self.received.append((header, claims))
        return Response(status_code=202)

    def sign(self, **changes: Any) -> str:
        """A SET from the identity provider: RISC account-disabled about ada, by default."""
        claims: dict[str, Any] = {
            "iss": IDP,
            "aud": AUDIENCE,
            "iat": int(time.time()),
            "jti": f"idp-{time.monotonic_ns()}",
            "sub_id": {"format": "email", "email": "ada@example.com"},
            "events": {st.ACCOUNT_DISABLED: {"reason": "hijacking"}},
        }
        key = changes.pop("key", self.idp_key)
        kid = changes.pop("kid", self.idp_kid)
        claims.update(changes)
        return jwt.encode(
            claims, key, algorithm="ES256", headers={"typ": "secevent+jwt", "kid": kid}
        )


@dataclass
class World:
    pool: asyncpg.Pool
    base: str
    signer: SigningKey
    partner: Partner
    partner_url: str
    runtime: Runtime
    signals: list[ReceivedSignal] = field(default_factory=list)

    async def call(
        self, method: str, path: str, token: str | None = "acc_rp1", **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with httpx.AsyncClient(base_url=self.base, timeout=15) as client:
            return await client.request(method, path, headers=headers, **kwargs)

    async def transmit(
        self, event_uri: str, user_id: str = "u-ada", email: str | None = "ada@example.com"
    ) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            return await transmitter.transmit(
                conn,
                "authn",
                user_id=user_id,
                event_uri=event_uri,
                event={"event_timestamp": int(time.time())},
                email=email,
                signer=self.signer,
                txn=uuid.uuid4().hex,
            )

    async def create(self, token: str = "acc_rp1", **body: Any) -> dict[str, Any]:
        response = await self.call("POST", "/ssf/streams", token, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def poll(self, stream_id: str, token: str = "acc_rp2", **body: Any) -> dict[str, Any]:
        body.setdefault("returnImmediately", True)
        response = await self.call("POST", f"/ssf/poll/{stream_id}", token, json=body)
        assert response.status_code == 200, response.text
        polled: dict[str, Any] = response.json()
        return polled

    async def queued(self, jti: str) -> asyncpg.Record:
        row = await self.pool.fetchrow("SELECT * FROM ssf_set_queue WHERE jti = $1", jti)
        assert row is not None
        return row

    def verified(self, token: str) -> dict[str, Any]:
        key = jwt.PyJWKSet.from_dict(self.signer.jwks())[self.signer.kid]
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=["ES256"], issuer=self.base, options={"verify_aud": False}
        )
        return claims


async def serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = make_server(app, HOST, port)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="session")
async def world(fresh_database: str, tmp_path: Path) -> AsyncIterator[World]:
    accord_port, partner_port = free_port(), free_port()
    base, partner_url = f"http://{HOST}:{accord_port}", f"http://{HOST}:{partner_port}"
    trusted = tmp_path / "transmitters.yaml"
    trusted.write_text(
        f"transmitters:\n  - issuer: {IDP}\n    jwks_uri: {partner_url}/jwks.json\n"
        f"    audience: {AUDIENCE}\n"
    )
    # Plain http on loopback: the development flag allows it.
    settings = AuthnSettings(
        public_url=base, ssf_delivery_poll_s=0.05, ssf_push_timeout_s=2.0, ssf_allow_http=True
    )
    partner = Partner()
    partner.accord_jwks_url = f"{base}/ssf/jwks.json"
    async with migrated_pool(
        fresh_database, "authn", ["accord.authn.migrations"], max_size=8
    ) as pool:
        for user_id, email in (("u-ada", "ada@example.com"), ("u-bob", "bob@example.com")):
            async with pool.acquire() as conn:
                await identities.upsert(
                    conn, user_id, sequence=1, status="active", user_name=user_id, email=email
                )
        runtime = Runtime("authn", settings, pool, cast(Any, None), "authn")
        app = create_app("authn", _ready)
        secure(app, max_body_bytes=1 << 20)
        app.state.security = ApiSecurity(
            cast(TokenStore, FakeTokens()),
            None,
            per_caller=RateLimiter(1000, 1000),
            failures=RateLimiter(1000, 1000),
        )
        made = World(
            pool, base, generate_signing_key(tmp_path / "ssf.pem"), partner, partner_url, runtime
        )

        async def react(conn: asyncpg.Connection, signal: ReceivedSignal) -> list[Envelope]:
            made.signals.append(signal)
            if signal.action != "lock":
                return []
            revoked = SessionRevoked(user_id=signal.user_id, reason="security signal", streams=0)
            return [new_event(revoked, source="accord/authn")]

        receiver = Receiver(
            load_transmitters(trusted, allow_http=True),
            JwksCache(min_refresh_s=0.0),
            max_age_s=300.0,
        )
        ssf_api.configure(app, runtime, settings, made.signer, react, receiver, long_poll_s=5.0)
        servers = [await serve(partner.app, partner_port), await serve(app, accord_port)]
        try:
            yield made
        finally:
            for server, task in servers:
                server.should_exit = True
                await task
            await receiver.keys.aclose()


async def _ready() -> dict[str, Any]:
    return {"ready": True}


def push_body(url: str, *events: str, **delivery: Any) -> dict[str, Any]:
    return {
        "events_requested": list(events),
        "delivery": {"method": ss.PUSH, "endpoint_url": url, **delivery},
    }


async def test_discovery_names_every_endpoint_and_the_keys(world: World) -> None:
    found = (await world.call("GET", "/.well-known/ssf-configuration", None)).json()
    keys = await world.call("GET", "/ssf/jwks.json", None)

    assert found == ssf_api.metadata(world.base)
    assert found["spec_version"] == "1_0"
    assert found["delivery_methods_supported"] == ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"]
    assert found["default_subjects"] == "ALL"
    assert [k["kid"] for k in keys.json()["keys"]] == [world.signer.kid]


async def test_pushed_sets_reach_the_receiver_verified_against_the_jwks(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = push_body(
        f"{world.partner_url}/events",
        st.SESSION_REVOKED,
        "urn:example:unknown",
        authorization_header=PARTNER_SECRET,
    )
    created = await world.create(**body)
    assert created["events_delivered"] == [st.SESSION_REVOKED]
    assert created["delivery"] == {"method": ss.PUSH, "endpoint_url": f"{world.partner_url}/events"}
    stopping = asyncio.Event()
    loop_runtime = Runtime("authn", world.runtime.settings, world.pool, cast(Any, None), "authn")
    loop_runtime.stopping = stopping
    # A long poll interval: only the transmitter's NOTIFY can wake the loop in time.
    loop = asyncio.create_task(delivery.run_push_delivery(loop_runtime, timeout_s=2.0, poll_s=60.0))
    await asyncio.sleep(0.3)

    assert await world.transmit(st.SESSION_REVOKED) == 1
    assert await world.transmit(st.ACCOUNT_ENABLED) == 0  # not requested

    async def arrived() -> bool:
        return len(world.partner.received) == 1

    await until(arrived)
    stopping.set()
    await asyncio.wait_for(loop, 5)
    header, claims = world.partner.received[0]
    assert header["typ"] == "secevent+jwt"
    assert (claims["iss"], claims["aud"]) == (world.base, "rp-1")
    assert claims["sub_id"]["identifiers"][0] == {"format": "opaque", "id": "u-ada"}
    assert list(claims["events"]) == [st.SESSION_REVOKED]
    assert world.partner.authorizations == [PARTNER_SECRET]
    row = await world.queued(claims["jti"])
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    shown = (await world.call("GET", f"/ssf/streams?stream_id={created['stream_id']}")).text
    assert "partner-secret" not in shown
    assert not [r for r in caplog.records if "partner-secret" in str(r.__dict__)]
    to_poll = {"stream_id": created["stream_id"], "delivery": {"method": ss.POLL}}
    switched = await world.call("PATCH", "/ssf/streams", json=to_poll)
    assert switched.json()["delivery"]["method"] == ss.POLL
    assert (await world.poll(created["stream_id"], "acc_rp1"))["sets"] == {}  # pushed already


async def test_refused_sets_fail_and_unavailable_receivers_are_retried(world: World) -> None:
    await world.create(**push_body(f"{world.partner_url}/events", st.SESSION_REVOKED))
    world.partner.answers = [
        (400, {"err": "invalid_audience", "description": "not ours"}),
        (503, None),
        (503, None),
    ]
    async with httpx.AsyncClient() as client:
        await world.transmit(st.SESSION_REVOKED)
        assert await delivery.deliver_due(world.pool, client, timeout_s=2.0) == 1
        await world.transmit(st.SESSION_REVOKED, user_id="u-bob", email=None)
        assert await delivery.deliver_due(world.pool, client, timeout_s=2.0) == 1

        rows = await world.pool.fetch(
            "SELECT user_id, status, attempts, last_error,"
            " status = 'pending' AND next_attempt_at > now() AS waits"
            " FROM ssf_set_queue ORDER BY created_at"
        )
        assert [tuple(r) for r in rows] == [
            ("u-ada", "failed", 1, "invalid_audience: not ours", False),
            ("u-bob", "pending", 1, "HTTP 503", True),
        ]
        await world.pool.execute("UPDATE ssf_set_queue SET next_attempt_at = now()")
        assert await delivery.deliver_due(world.pool, client, timeout_s=2.0, max_attempts=2) == 1
    bob = await world.pool.fetchrow("SELECT * FROM ssf_set_queue WHERE user_id = 'u-bob'")
    assert (bob["status"], bob["attempts"], bob["last_error"]) == ("failed", 2, "gave up: HTTP 503")


async def test_an_unreachable_receiver_is_retried_with_backoff(world: World) -> None:
    await world.create(**push_body(f"http://{HOST}:{free_port()}/events", st.ACCOUNT_DISABLED))
    await world.transmit(st.ACCOUNT_DISABLED)
    async with httpx.AsyncClient() as client:
        assert await delivery.deliver_due(world.pool, client, timeout_s=1.0) == 1
        assert await delivery.deliver_due(world.pool, client, timeout_s=1.0) == 0  # not yet due
    row = await world.pool.fetchrow("SELECT * FROM ssf_set_queue")
    assert row["status"] == "pending"
    assert row["last_error"].startswith("ConnectError")
    assert 0.5 <= delivery.backoff_s(1) <= 1.0
    assert delivery.backoff_s(30) <= delivery.RETRY_CAP_S


async def test_a_poll_stream_hands_out_sets_until_they_are_acknowledged(world: World) -> None:
    created = await world.create(
        "acc_rp2", events_requested=[st.ACCOUNT_DISABLED, st.ACCOUNT_ENABLED]
    )
    stream_id = created["stream_id"]
    assert created["delivery"] == {
        "method": ss.POLL,
        "endpoint_url": f"{world.base}/ssf/poll/{stream_id}",
    }
    assert await world.transmit(st.ACCOUNT_DISABLED) == 1

    first = await world.poll(stream_id)
    ((jti, token),) = first["sets"].items()
    assert first["moreAvailable"] is False
    claims = world.verified(token)
    assert (claims["jti"], claims["aud"], list(claims["events"])) == (
        jti,
        "rp-2",
        [st.ACCOUNT_DISABLED],
    )
    assert (await world.poll(stream_id))["sets"] == {}  # handed out, waiting for its ack
    assert (await world.poll(stream_id, ack=[jti], maxEvents=0))["sets"] == {}
    assert (await world.queued(jti))["status"] == "acknowledged"

    await world.transmit(st.ACCOUNT_ENABLED)
    await world.transmit(st.ACCOUNT_DISABLED)
    one = await world.poll(stream_id, maxEvents=1)
    assert (len(one["sets"]), one["moreAvailable"]) == (1, True)
    (bad,) = one["sets"]
    rest = await world.poll(stream_id, setErrs={bad: {"err": "invalid_key", "description": "?"}})
    assert len(rest["sets"]) == 1
    assert (await world.queued(bad))["last_error"] == "invalid_key: ?"

    waiting = asyncio.create_task(
        world.poll(stream_id, returnImmediately=False, ack=list(rest["sets"]))
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await world.transmit(st.ACCOUNT_ENABLED)
    late = await asyncio.wait_for(waiting, 5)
    assert [world.verified(t)["events"] for t in late["sets"].values()] == [
        {st.ACCOUNT_ENABLED: {"event_timestamp": pytest.approx(time.time(), abs=30)}}
    ]


async def test_polling_is_for_the_streams_own_receiver(world: World) -> None:
    polled = await world.create("acc_rp2")
    pushed = await world.create(**push_body(f"{world.partner_url}/events", st.SESSION_REVOKED))

    other = await world.call("POST", f"/ssf/poll/{polled['stream_id']}", "acc_rp1", json={})
    unknown = await world.call("POST", "/ssf/poll/nope", "acc_rp2", json={})
    push = await world.call("POST", f"/ssf/poll/{pushed['stream_id']}", "acc_rp1", json={})
    bad = await world.call(
        "POST", f"/ssf/poll/{polled['stream_id']}", "acc_rp2", json={"maxEvents": -1}
    )

    # Another receiver's stream is none of the caller's business: as unknown as no stream.
    assert (other.status_code, unknown.status_code) == (404, 404)
    assert other.json()["detail"] == unknown.json()["detail"]
    assert (push.status_code, push.json()["err"]) == (400, "invalid_request")
    assert bad.json() == {
        "err": "invalid_request",
        "description": "maxEvents must be a non-negative integer",
    }


async def test_stream_management_answers_as_ssf_says(world: World) -> None:
    mine = await world.create(description="mine")
    theirs = await world.create("acc_rp2")
    stream_id = mine["stream_id"]

    async def status(method: str, path: str, token: str | None = "acc_rp1", **kw: Any) -> int:
        return (await world.call(method, path, token, **kw)).status_code

    # Another receiver's stream answers as no stream does, whatever the call.
    for method, path, body in (
        ("GET", f"/ssf/streams?stream_id={theirs['stream_id']}", None),
        ("GET", f"/ssf/status?stream_id={theirs['stream_id']}", None),
        ("PATCH", "/ssf/streams", {"stream_id": theirs["stream_id"], "description": "x"}),
        ("PUT", "/ssf/streams", {"stream_id": theirs["stream_id"]}),
        ("POST", "/ssf/status", {"stream_id": theirs["stream_id"], "status": "paused"}),
        ("POST", "/ssf/verify", {"stream_id": theirs["stream_id"]}),
        ("DELETE", f"/ssf/streams?stream_id={theirs['stream_id']}", None),
    ):
        assert await status(method, path, json=body) == 404, (method, path)
    subject = {"format": "opaque", "id": "u-ada"}
    for verb in ("add", "remove"):
        body = {"stream_id": theirs["stream_id"], "subject": subject}
        assert await status("POST", f"/ssf/subjects:{verb}", json=body) == 404
    assert await status("GET", "/ssf/streams?stream_id=unknown") == 404
    assert await status("GET", f"/ssf/streams?stream_id={stream_id}", "acc_admin") == 200
    assert await status("GET", "/ssf/streams", "acc_bob") == 403
    assert await status("GET", "/ssf/streams", None) == 401
    listed = (await world.call("GET", "/ssf/streams")).json()
    assert [s["stream_id"] for s in listed] == [stream_id]
    assert len((await world.call("GET", "/ssf/streams", "acc_admin")).json()) == 2

    changed = await world.call(
        "PATCH", "/ssf/streams", json={"stream_id": stream_id, "iss": "https://evil.example"}
    )
    assert changed.status_code == 400
    assert changed.headers["content-type"] == "application/problem+json"
    patched = await world.call(
        "PATCH", "/ssf/streams", json={**mine, "events_requested": [st.SESSION_REVOKED]}
    )
    assert patched.json()["events_delivered"] == [st.SESSION_REVOKED]
    replaced = await world.call("PUT", "/ssf/streams", json={"stream_id": stream_id})
    assert "description" not in replaced.json()
    assert replaced.json()["events_requested"] == []

    hook = push_body(f"{world.partner_url}/events", st.SESSION_REVOKED)
    await world.create(**hook)
    assert await status("POST", "/ssf/streams", json=hook) == 409
    assert await status("POST", "/ssf/streams", "acc_rp2", json=hook) == 201
    metadata = push_body("http://169.254.169.254/latest/meta-data/")
    assert await status("POST", "/ssf/streams", json=metadata) == 400
    assert await status("POST", "/ssf/streams", json=["not", "an", "object"]) == 400

    assert await status("DELETE", f"/ssf/streams?stream_id={stream_id}", "acc_rp2") == 404
    assert await status("DELETE", f"/ssf/streams?stream_id={stream_id}") == 204
    assert await status("GET", f"/ssf/streams?stream_id={stream_id}") == 404


async def test_a_stream_is_addressed_to_the_receiver_that_made_it(world: World) -> None:
    # rp-1 may not have Accord sign SETs addressed to rp-2 (which it could replay to rp-2).
    theirs = await world.call("POST", "/ssf/streams", json={"aud": "rp-2"})
    both = await world.call("POST", "/ssf/streams", json={"aud": ["rp-1", "rp-2"]})
    echoed = await world.create(aud="rp-1", events_requested=[st.ACCOUNT_DISABLED])
    plain = await world.create("acc_rp2", events_requested=[st.ACCOUNT_DISABLED])

    assert (theirs.status_code, both.status_code) == (400, 400)
    assert theirs.headers["content-type"] == "application/problem+json"
    assert "rp-2" not in theirs.text
    assert (echoed["aud"], plain["aud"]) == ("rp-1", "rp-2")
    assert await world.transmit(st.ACCOUNT_DISABLED) == 2
    mine = await world.poll(echoed["stream_id"], "acc_rp1")
    ((_, token),) = mine["sets"].items()
    assert world.verified(token)["aud"] == "rp-1"
    with pytest.raises(asyncpg.CheckViolationError):
        await world.pool.execute(
            "UPDATE ssf_streams SET config = jsonb_set(config, '{aud}', '[\"rp-2\"]')"
            " WHERE stream_id = $1",
            echoed["stream_id"],
        )


async def test_status_holds_drops_and_announces(world: World) -> None:
    stream_id = (await world.create("acc_rp2", events_requested=[st.ACCOUNT_DISABLED]))["stream_id"]

    async def set_status(status: str, token: str = "acc_rp2", **extra: Any) -> dict[str, Any]:
        body = {"stream_id": stream_id, "status": status, **extra}
        response = await world.call("POST", "/ssf/status", token, json=body)
        assert response.status_code == 200, response.text
        answered: dict[str, Any] = response.json()
        return answered

    shown = await world.call("GET", f"/ssf/status?stream_id={stream_id}", "acc_rp2")
    assert shown.json() == {"stream_id": stream_id, "status": "enabled"}
    assert await set_status("paused") == {"stream_id": stream_id, "status": "paused"}
    assert await world.transmit(st.ACCOUNT_DISABLED) == 1  # held while paused
    assert (await world.poll(stream_id))["sets"] == {}
    await set_status("enabled")
    assert len((await world.poll(stream_id))["sets"]) == 1

    await set_status("disabled", "acc_admin", reason="abuse")
    assert await world.transmit(st.ACCOUNT_DISABLED) == 0
    (announced,) = (await world.poll(stream_id))["sets"].values()
    claims = world.verified(announced)
    assert claims["sub_id"] == {"format": "opaque", "id": stream_id}
    assert claims["events"] == {st.STREAM_UPDATED: {"status": "disabled", "reason": "abuse"}}
    bad = await world.call(
        "POST", "/ssf/status", "acc_rp2", json={"stream_id": stream_id, "status": "off"}
    )
    assert bad.status_code == 400


async def test_under_default_subjects_all_only_removed_subjects_are_left_out(
    world: World,
) -> None:
    stream_id = (await world.create("acc_rp2", events_requested=[st.SESSION_REVOKED]))["stream_id"]

    async def subjects(verb: str, subject: dict[str, str]) -> int:
        body = {"stream_id": stream_id, "subject": subject, "verified": True}
        return (await world.call("POST", f"/ssf/subjects:{verb}", "acc_rp2", json=body)).status_code

    async def covered(user_id: str, email: str) -> int:
        return await world.transmit(st.SESSION_REVOKED, user_id, email)

    assert await covered("u-ada", "ada@example.com") == 1  # default_subjects ALL
    assert await subjects("add", {"format": "email", "email": "Bob@Example.com"}) == 200
    # Adding a subject does not make the stream an allow-list: everyone is in it still.
    assert await covered("u-ada", "ada@example.com") == 1
    assert await covered("u-bob", "bob@example.com") == 1
    iss_sub = {"format": "iss_sub", "iss": world.base, "sub": "u-bob"}
    assert await subjects("remove", iss_sub) == 204
    assert await covered("u-bob", "bob@example.com") == 0
    assert await covered("u-ada", "ada@example.com") == 1
    # A removed subject added again is in the stream again.
    assert await subjects("add", {"format": "opaque", "id": "u-bob"}) == 200
    assert await covered("u-bob", "bob@example.com") == 1
    foreign = {"format": "iss_sub", "iss": "https://elsewhere", "sub": "u-bob"}
    assert await subjects("add", foreign) == 400
    assert await subjects("add", {"format": "phone_number", "phone_number": "+1"}) == 400


async def test_verification_queues_a_set_with_the_state(world: World) -> None:
    stream_id = (await world.create("acc_rp2"))["stream_id"]
    body = {"stream_id": stream_id, "state": "VGhpcyBpcyBhbiBleGFtcGxl"}

    first = await world.call("POST", "/ssf/verify", "acc_rp2", json=body)
    again = await world.call("POST", "/ssf/verify", "acc_rp2", json=body)

    assert first.status_code == 204
    assert (again.status_code, again.headers["retry-after"]) == (429, "15")
    (token,) = (await world.poll(stream_id))["sets"].values()
    claims = world.verified(token)
    assert claims["sub_id"] == {"format": "opaque", "id": stream_id}
    assert claims["events"] == {st.VERIFICATION: {"state": "VGhpcyBpcyBhbiBleGFtcGxl"}}
    assert claims["txn"]


async def test_the_sets_one_cause_produces_share_their_txn(world: World) -> None:
    events = [st.ACCOUNT_DISABLED, st.SESSION_REVOKED, st.ACCOUNT_ENABLED]
    stream_id = (await world.create("acc_rp2", events_requested=events))["stream_id"]
    policy = LockoutPolicy(threshold=3, window=timedelta(minutes=10))
    ports_of = postgres_ports(policy, transmitter.sender("authn", world.signer))
    failed = AuthnFailed(user_id="u-ada", idp="okta", reason="bad password")
    cause = new_event(failed, source="urn:test:okta")

    async with world.pool.acquire() as conn, conn.transaction():
        ports = ports_of(conn, "accord/authn")
        await lockout.lock(ports, "u-ada", "a test", cause=cause)
        await lockout.revoke_sessions(ports, "u-bob", "by hand", cause=None)
        await lockout.revoke_sessions(ports, "u-bob", "by hand again", cause=None)

    polled = (await world.poll(stream_id))["sets"].values()
    txns: dict[tuple[str, str], list[str]] = {}
    for claims in map(world.verified, polled):
        subject = claims["sub_id"]["identifiers"][0]["id"]
        txns.setdefault((subject, next(iter(claims["events"]))), []).append(claims["txn"])
    # The failed sign-in that locked ada is the cause of both its SETs.
    assert txns.pop(("u-ada", st.ACCOUNT_DISABLED)) == [cause.id]
    assert txns.pop(("u-ada", st.SESSION_REVOKED)) == [cause.id]
    # Two revocations by hand: two causes, each with a txn of its own.
    ((key, by_hand),) = txns.items()
    assert key == ("u-bob", st.SESSION_REVOKED)
    assert len(set(by_hand)) == 2
    assert cause.id not in by_hand


async def push(world: World, token: str, caller: str = "acc_idp", **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {"Content-Type": "application/secevent+jwt"})
    return await world.call(
        "POST", "/ssf/receiver/push", caller, content=token.encode(), headers=headers, **kw
    )


async def outbox_types(world: World) -> list[str]:
    rows = await world.pool.fetch("SELECT headers FROM outbox ORDER BY id")
    return [dict(json.loads(r["headers"]))["ce_type"] for r in rows]


async def test_the_receiver_takes_a_good_signal_once(world: World) -> None:
    token = world.partner.sign()

    taken = await push(world, token)
    replayed = await push(world, token)

    assert (taken.status_code, taken.content) == (202, b"")
    (signal,) = world.signals
    assert (signal.user_id, signal.issuer, signal.event_uri, signal.action) == (
        "u-ada",
        IDP,
        st.ACCOUNT_DISABLED,
        "lock",
    )
    assert await outbox_types(world) == ["security.signal_received", SessionRevoked.event_type]
    assert replayed.status_code == 400
    assert replayed.json()["err"] == "invalid_request"
    assert "replayed" in replayed.json()["description"]
    assert len(world.signals) == 1


@pytest.mark.parametrize(
    ("changes", "err", "says"),
    [
        ({"key": ec.generate_private_key(ec.SECP256R1())}, "invalid_key", "signature"),
        ({"kid": "idp-unknown"}, "invalid_key", "kid"),
        ({"aud": "https://someone-else.example"}, "invalid_audience", "aud"),
        ({"iat": int(time.time()) - 3600}, "invalid_request", "stale"),
        ({"iss": "https://rogue.example/"}, "invalid_issuer", "issuer"),
        ({"events": {}}, "invalid_request", "exactly one"),
    ],
)
async def test_the_receiver_refuses_what_fails_a_check(
    world: World, changes: dict[str, Any], err: str, says: str
) -> None:
    refused = await push(world, world.partner.sign(**changes))

    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["err"] == err
    assert says in refused.json()["description"]
    assert world.signals == []
    assert await outbox_types(world) == []


async def test_a_set_about_an_unknown_subject_can_be_pushed_again_later(world: World) -> None:
    token = world.partner.sign(sub_id={"format": "email", "email": "new@example.com"})

    unknown = await push(world, token)
    async with world.pool.acquire() as conn:
        await identities.upsert(conn, "u-new", sequence=1, status="active", email="new@example.com")
    known = await push(world, token)

    assert (unknown.status_code, unknown.json()["err"]) == (400, "invalid_request")
    assert "unknown subject" in unknown.json()["description"]
    assert known.status_code == 202
    assert [s.user_id for s in world.signals] == ["u-new"]


async def test_the_receiver_needs_the_media_type_and_the_permission(world: World) -> None:
    token = world.partner.sign()

    plain = await push(world, token, headers={"Content-Type": "application/jwt"})
    relying_party = await push(world, token, "acc_rp1")

    assert (plain.status_code, plain.json()["err"]) == (400, "invalid_request")
    assert relying_party.status_code == 403
    assert (await push(world, token)).status_code == 202


async def test_a_rotated_key_is_fetched_and_control_events_only_remembered(world: World) -> None:
    world.partner.idp_key = ec.generate_private_key(ec.SECP256R1())
    world.partner.idp_kid = "idp-2"
    verification = {st.VERIFICATION: {"state": "x"}}

    rotated = await push(world, world.partner.sign())
    control = await push(
        world, world.partner.sign(events=verification, sub_id={"format": "opaque", "id": "s-9"})
    )

    assert (rotated.status_code, control.status_code) == (202, 202)
    assert [s.event_uri for s in world.signals] == [st.ACCOUNT_DISABLED]
    assert await world.pool.fetchval("SELECT count(*) FROM ssf_received_jtis") == 2
