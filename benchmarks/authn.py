"""Authentication orchestration, measured on the whole platform (real broker, PostgreSQL,
scim2-server): how fast a lockout takes effect everywhere, and the latency of the calls an
identity provider makes on every sign-in.

1. Lockout: ``--users`` (20) joiners, each then sent five ``authn.failed`` events one
   after the other. Measured from the fifth failure's publish to (a) ``identity.locked``,
   (b) the account disabled in the SCIM target (``active: false``) and (c) a signed CAEP
   session-revoked SET arriving at a push receiver of the benchmark's own.
2. ``POST /v1/authn/evaluate`` (authz's factor policy) and ``POST /v1/authn/verify`` with a
   TOTP code (authn), ``--calls`` (300) each, one at a time: p50/p90/p99/max.

On Apache Kafka (one KRaft node) unless ``--broker tansu`` or ACCORD_BROKER=tansu.

Usage::

    uv run --frozen python benchmarks/authn.py [--broker kafka|tansu] [--users 20] [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from benchlib import brokers
from benchlib.services import MEASURED
from benchlib.stats import summary_ms

from accord.authn.domain import totp
from accord.events import AuthnFailed, Publisher, UserCreated
from accord.runtime.security.roles import Role
from accord.stack.platform import Platform, PlatformConfig

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


class Receiver:
    """A push receiver that notes when each subject's session-revoked SET arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        owner = self

        class Push(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                claims = jwt.decode(body, options={"verify_signature": False})
                if SESSION_REVOKED in claims["events"]:
                    for alias in claims["sub_id"].get("identifiers", [claims["sub_id"]]):
                        if "id" in alias:
                            owner.arrived.setdefault(alias["id"], time.monotonic())
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Push)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"


async def until(probe: Any, limit_s: float = 60.0) -> Any:
    """Poll until probe() answers something true; that answer."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.02)
    raise TimeoutError("timed out")


async def lockouts(platform: Platform, users: int, receiver: Receiver) -> dict[str, Any]:
    kafka = platform.bootstrap_servers
    names = [f"bench.lock.{i}.{time.time_ns()}" for i in range(users)]
    ids = [f"bl-{i}-{time.time_ns()}" for i in range(users)]
    scim = httpx.AsyncClient(
        base_url=f"{platform.scim.base_url}/v2",
        headers={"Authorization": f"Bearer {platform.scim.bearer_token}"},
    )

    async def account(name: str) -> dict[str, Any] | None:
        found = (await scim.get("/Users", params={"filter": f'userName eq "{name}"'})).json()
        resources: list[dict[str, Any]] = found.get("Resources", [])
        return resources[0] if resources else None

    async with Publisher(source="urn:bench:hr", bootstrap_servers=kafka) as hr:
        for user_id, name in zip(ids, names, strict=True):
            await hr.publish(UserCreated(user_id=user_id, user_name=name), sequence=1)
    for name in names:
        await until(lambda n=name: account(n))
    locked_at: list[float] = []
    disabled_at: list[float] = []
    signalled_at: list[float] = []
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    async with (
        Publisher(source="urn:bench:idp", bootstrap_servers=kafka) as idp,
        httpx.AsyncClient(base_url=platform.endpoints()["authn"], headers=headers) as authn,
    ):
        for user_id, name in zip(ids, names, strict=True):
            for attempt in range(5):
                failed = AuthnFailed(user_id=user_id, idp="bench", reason=f"bad {attempt}")
                await idp.publish(failed)
            fifth = time.monotonic()

            async def is_locked(u: str = user_id) -> bool:
                listed = await authn.get("/v1/lockouts", params={"user_id": u})
                return bool(listed.json()["items"])

            async def is_disabled(n: str = name) -> bool:
                found = await account(n)
                return found is not None and found.get("active") is False

            async def signalled(u: str = user_id) -> bool:
                return u in receiver.arrived

            await until(is_locked)
            locked_at.append(time.monotonic() - fifth)
            await until(is_disabled)
            disabled_at.append(time.monotonic() - fifth)
            await until(signalled)
            signalled_at.append(receiver.arrived[user_id] - fifth)
    await scim.aclose()
    return {
        "identity.locked": summary_ms(locked_at),
        "scim account disabled": summary_ms(disabled_at),
        "session-revoked SET at receiver": summary_ms(signalled_at),
    }


async def sign_in_calls(platform: Platform, calls: int) -> dict[str, Any]:
    """Evaluate for one identity; verify with four wrong codes per identity (a fifth would
    lock it, and a locked identity is refused before any code is checked)."""
    stamp = time.time_ns()
    users = [f"bench-mfa-{i}-{stamp}" for i in range(max(1, calls // 4))]
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    async with Publisher(source="urn:bench:hr", bootstrap_servers=platform.bootstrap_servers) as hr:
        for user in users:
            await hr.publish(UserCreated(user_id=user, user_name=user), sequence=1)
    endpoints = platform.endpoints()
    async with (
        httpx.AsyncClient(base_url=endpoints["authz"], headers=headers) as authz,
        httpx.AsyncClient(base_url=endpoints["authn"], headers=headers) as authn,
    ):
        for user in users:
            step = totp.time_step(time.time())

            async def enrolled(u: str = user) -> dict[str, Any] | None:
                answer = await authn.post(f"/v1/mfa/{u}/totp")
                return answer.json() if answer.status_code == 201 else None

            pending = await until(enrolled)
            code = totp.code_at(totp.TotpSecret(pending["secret"]), step)
            confirm = f"/v1/mfa/{user}/totp/{pending['credential_id']}/confirm"
            assert (await authn.post(confirm, json={"code": code})).is_success
        question = {
            "user_id": users[0],
            "application": "payroll",
            "context": {"network": "internet", "risk": "low", "presented": ["pwd", "otp"]},
        }
        evaluate: list[float] = []
        for _ in range(calls):
            started = time.monotonic()
            answer = await authz.post("/v1/authn/evaluate", json=question)
            evaluate.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
        verify: list[float] = []
        for user in users:
            for _ in range(4):
                # A wrong code: a full verification (lookup, unseal, compare, an
                # authn.failed event), as for an attacker's guesses.
                started = time.monotonic()
                answer = await authn.post(
                    "/v1/authn/verify", json={"user_id": user, "totp_code": "000000"}
                )
                verify.append(time.monotonic() - started)
                assert answer.json().get("reason") == "wrong code", answer.text
    return {
        "POST /v1/authn/evaluate": summary_ms(evaluate),
        "POST /v1/authn/verify (TOTP)": summary_ms(verify),
    }


async def main(users: int, calls: int, broker: str) -> None:
    with tempfile.TemporaryDirectory(prefix="accord-bench-authn-") as home:
        env = {
            "ACCORD_LOG_LEVEL": "WARNING",
            "ACCORD_RATE_LIMIT_PER_S": "100000",
            "ACCORD_RATE_LIMIT_BURST": "100000",
            "ACCORD_LOCKOUT_THRESHOLD": "5",
        }
        config = PlatformConfig.ephemeral(
            Path(home), broker=broker, extra_env=env, services=MEASURED
        )
        platform = Platform(config)
        started = time.monotonic()
        await platform.start()
        print(f"platform ready on {broker} in {time.monotonic() - started:.1f} s", flush=True)
        receiver = Receiver()
        try:
            token = await platform.issue_token("bench-receiver", {Role.SSF_RECEIVER})
            async with httpx.AsyncClient(
                base_url=platform.endpoints()["authn"],
                headers={"Authorization": f"Bearer {token}"},
            ) as ssf:
                stream = await ssf.post(
                    "/ssf/streams",
                    json={
                        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url},
                        "events_requested": [SESSION_REVOKED],
                    },
                )
                assert stream.status_code == 201, stream.text
            results = {
                "lockout (from the fifth failure)": await lockouts(platform, users, receiver),
                "sign-in calls (one at a time)": await sign_in_calls(platform, calls),
            }
        finally:
            receiver.server.shutdown()
            await platform.stop()
    print(json.dumps(results, indent=2))
    print(f"\n{'measurement':<40} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for group in results.values():
        for name, row in group.items():
            print(
                f"{name:<40} {row['count']:>5} {row['p50']:>8} {row['p90']:>8}"
                f" {row['p99']:>8} {row['max']:>8}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--broker", choices=("kafka", "tansu"), help="default: ACCORD_BROKER, else kafka"
    )
    parser.add_argument("--users", type=int, default=20, help="identities locked out (20)")
    parser.add_argument("--calls", type=int, default=300, help="calls of each API (300)")
    arguments = parser.parse_args()
    # The benchmark's own Publisher asks what the broker's profile allows (ACCORD_BROKER).
    kind = brokers.prepare(arguments.broker).name
    asyncio.run(main(arguments.users, arguments.calls, kind))
