"""Wires authn's handlers, APIs and Shared Signals delivery into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import asyncpg
from fastapi import FastAPI

from accord.authn import (
    delivery,
    factors,
    factors_api,
    housekeeping,
    lockout_api,
    ssf_api,
    transmitter,
)
from accord.authn.domain.lockout import LockoutPolicy
from accord.authn.handlers import Handlers
from accord.authn.receiver import ReceivedSignal
from accord.authn.risk import Risk
from accord.authn.settings import AuthnSettings
from accord.authn.ssf_keys import load_signing_key
from accord.events import Envelope, topics
from accord.runtime.consumer import Handler
from accord.runtime.service import Runtime, ServiceDefinition

NAME = "authn"


def definition(settings: AuthnSettings) -> ServiceDefinition:
    """Authn as the runtime runs it. A signing key that cannot be read stops it before it
    starts; without one configured, it runs and transmits nothing (the log says so)."""
    signer = load_signing_key(settings.ssf_signing_key_file)
    ssf_api.check_transmitter(settings, signer)
    source = f"accord/{NAME}"
    policy = LockoutPolicy(
        threshold=settings.lockout_threshold,
        window=timedelta(seconds=settings.lockout_window_s),
    )
    risk = Risk(policy, transmitter.sender(NAME, signer), source)

    async def remove_factors(conn: asyncpg.Connection, user_id: str, reason: str) -> list[Envelope]:
        return await factors.remove_all_factors(conn, user_id, reason, source=source)

    flows = Handlers(risk=risk, remove_factors=remove_factors)
    receiver = ssf_api.receiver_of(settings)

    async def close_receiver(runtime: Runtime) -> None:
        await receiver.keys.aclose()

    async def react(conn: asyncpg.Connection, signal: ReceivedSignal) -> list[Envelope]:
        """A security signal from an identity provider drives the same flows as failures."""
        why = f"{signal.event_uri.rsplit('/', 1)[-1]} from {signal.issuer}"[:200]
        if signal.action == "lock":
            return await risk.lock(conn, signal.user_id, f"security signal: {why}", cause=None)
        if signal.action == "revoke_sessions":
            return await risk.revoke_sessions(conn, signal.user_id, why, cause=None)
        return []

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        table: dict[str, Handler] = dict.fromkeys(topics.USER_TOPICS, flows.user_event)
        table.update(dict.fromkeys(topics.AUTHN_TOPICS, flows.sign_in))
        table[topics.ACCESS_GRANTED] = flows.access_event
        table[topics.ACCESS_DECIDED] = flows.access_event
        table[topics.MFA_ENROLMENT_REQUESTED] = flows.enrolment
        table[topics.MFA_ENROLLED] = flows.enrolment
        return table

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        factors_api.configure(app, runtime, settings)
        lockout_api.configure(app, runtime, risk)
        ssf_api.configure(app, runtime, settings, signer, react, receiver)

    return ServiceDefinition(
        name=NAME,
        http_port=settings.http_port,
        migrations=["accord.authn.migrations"],
        routes=routes,
        configure_app=configure_app,
        background=[delivery.delivery_hook(settings), housekeeping.pruner(policy)],
        on_stop=[close_receiver],
    )
