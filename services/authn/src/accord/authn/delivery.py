"""Push delivery of queued SETs (RFC 8935): POST each to its stream's endpoint.

202 (any 2xx) delivers it; a 400 with an RFC 8935 error fails it for good; anything else
(5xx, timeouts, refused connections) is retried with exponential backoff and jitter until
the attempts run out. The loop wakes on the transmitter's NOTIFY or every poll interval,
leases what it sends (so instances share the work), and stops when the service stops.
The Authorization header a stream gave is sent, never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import asyncpg
import httpx

from accord.authn.adapters import ssf_store
from accord.authn.adapters.ssf_store import PushJob
from accord.authn.settings import AuthnSettings
from accord.runtime.addresses import first_forbidden, literal_address
from accord.runtime.service import Hook, Runtime

log = logging.getLogger(__name__)

BATCH = 50
MAX_ATTEMPTS = 12
RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0
CLOSED_KEPT_S = 7 * 24 * 3600.0
PURGE_EVERY_S = 300.0
_jitter = random.SystemRandom()


@dataclass(frozen=True)
class Outcome:
    """What one push attempt came to."""

    kind: Literal["delivered", "refused", "retry"]
    detail: str = ""


def backoff_s(attempts: int, *, base: float = RETRY_BASE_S, cap: float = RETRY_CAP_S) -> float:
    """Delay before the next attempt: doubling per attempt up to a cap, half of it jittered."""
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay / 2 + _jitter.uniform(0, delay / 2)


async def _resolves_to_forbidden(url: str) -> bool:
    # Validation refused literal link-local addresses; a name may still resolve to one.
    parts = urlsplit(url)
    host = parts.hostname or ""
    if literal_address(host) is not None:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port)
    return first_forbidden([str(info[4][0]) for info in infos]) is not None


async def push_one(client: httpx.AsyncClient, job: PushJob, *, timeout_s: float) -> Outcome:
    """One RFC 8935 push of one SET."""
    headers = {"Content-Type": "application/secevent+jwt", "Accept": "application/json"}
    if job.authorization:
        headers["Authorization"] = job.authorization
    try:
        if await _resolves_to_forbidden(job.endpoint_url):
            return Outcome("retry", "the endpoint resolves to a link-local or metadata address")
        response = await client.post(
            job.endpoint_url, content=job.token.encode(), headers=headers, timeout=timeout_s
        )
    except (httpx.HTTPError, OSError) as error:
        return Outcome("retry", f"{type(error).__name__}: {str(error)[:200]}")
    if response.is_success:
        return Outcome("delivered")
    if response.status_code == 400:
        return Outcome("refused", _rfc8935_error(response))
    return Outcome("retry", f"HTTP {response.status_code}")


def _rfc8935_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return "HTTP 400 without an RFC 8935 error body"
    err = str(body.get("err", "unknown"))[:64]
    description = str(body.get("description", ""))[:300]
    printable = "".join(c if c.isprintable() else "?" for c in f"{err}: {description}")
    return printable


async def deliver_due(
    pool: asyncpg.Pool,
    client: httpx.AsyncClient,
    *,
    timeout_s: float,
    limit: int = BATCH,
    max_attempts: int = MAX_ATTEMPTS,
) -> int:
    """Push one batch of due SETs; how many were attempted."""
    async with pool.acquire() as conn, conn.transaction():
        jobs = await ssf_store.claim_push(conn, limit=limit, lease_s=timeout_s * 2 + 10)
    outcomes = await asyncio.gather(
        *(_attempt(pool, client, job, timeout_s, max_attempts) for job in jobs),
        return_exceptions=True,
    )
    # Every attempt has finished; a database error in recording one surfaces now (its SET
    # is tried again when its lease ends).
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return len(jobs)


async def _attempt(
    pool: asyncpg.Pool, client: httpx.AsyncClient, job: PushJob, timeout_s: float, most: int
) -> None:
    outcome = await push_one(client, job, timeout_s=timeout_s)
    where = {"jti": job.jti, "stream_id": job.stream_id, "attempts": job.attempts}
    async with pool.acquire() as conn:
        if outcome.kind == "delivered":
            await ssf_store.mark_delivered(conn, job.jti)
            log.info("SET delivered", extra=where)
        elif outcome.kind == "refused":
            await ssf_store.mark_failed(conn, job.jti, outcome.detail)
            log.warning("SET refused by the receiver", extra={**where, "err": outcome.detail})
        elif job.attempts >= most:
            await ssf_store.mark_failed(conn, job.jti, f"gave up: {outcome.detail}")
            log.error("SET undeliverable", extra={**where, "error": outcome.detail})
        else:
            delay = backoff_s(job.attempts)
            await ssf_store.mark_retry(conn, job.jti, outcome.detail, delay)
            log.info("SET push failed; retrying", extra={**where, "error": outcome.detail})


async def _wait(events: list[asyncio.Event], seconds: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_push_delivery(
    runtime: Runtime,
    *,
    timeout_s: float,
    poll_s: float,
    keep_received_s: float = 3600.0,
    max_attempts: int = MAX_ATTEMPTS,
    client: httpx.AsyncClient | None = None,
) -> None:
    """Deliver pushed SETs until the service stops; reconnects after database errors."""
    http = client or httpx.AsyncClient(follow_redirects=False)
    wake = asyncio.Event()
    try:
        while not runtime.stopping.is_set():
            try:
                await _listen_and_deliver(
                    runtime, http, wake, timeout_s, poll_s, keep_received_s, max_attempts
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("SET push delivery paused: %s", type(error).__name__)
                await _wait([runtime.stopping], 2.0)
    finally:
        if client is None:
            await http.aclose()


async def _listen_and_deliver(
    runtime: Runtime,
    http: httpx.AsyncClient,
    wake: asyncio.Event,
    timeout_s: float,
    poll_s: float,
    keep_received_s: float,
    max_attempts: int,
) -> None:
    channel = ssf_store.channel_name(runtime.schema)

    def on_notify(*_: object) -> None:
        wake.set()

    purged_at = 0.0
    async with runtime.pool.acquire() as listener:
        await listener.add_listener(channel, on_notify)
        try:
            while not runtime.stopping.is_set():
                wake.clear()
                sent = await deliver_due(
                    runtime.pool, http, timeout_s=timeout_s, max_attempts=max_attempts
                )
                if time.monotonic() - purged_at > PURGE_EVERY_S:
                    purged_at = time.monotonic()
                    await ssf_store.purge(
                        listener,
                        received_older_than_s=keep_received_s,
                        closed_older_than_s=CLOSED_KEPT_S,
                    )
                if sent < BATCH:
                    await _wait([wake, runtime.stopping], poll_s)
        finally:
            with contextlib.suppress(asyncpg.InterfaceError, OSError):
                await listener.remove_listener(channel, on_notify)


def delivery_hook(settings: AuthnSettings) -> Hook:
    """The background hook for the service definition, configured from the settings."""

    async def ssf_push_delivery(runtime: Runtime) -> None:
        await run_push_delivery(
            runtime,
            timeout_s=settings.ssf_push_timeout_s,
            poll_s=settings.ssf_delivery_poll_s,
            # Long enough that a replay is refused as stale once its jti is forgotten.
            keep_received_s=2 * settings.ssf_max_age_s + 120,
        )

    return ssf_push_delivery
