"""Wires authn's handlers, APIs and Shared Signals delivery into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
from fastapi import FastAPI

from accord.authn import (
    access_pass_api,
    delivery,
    factors,
    factors_api,
    housekeeping,
    lockout_api,
    ssf_api,
    transmitter,
)
from accord.authn.adapters.enrolments import PostgresEnrolments
from accord.authn.adapters.identities import PostgresIdentities
from accord.authn.adapters.lockouts import PostgresLockouts, PostgresRequests
from accord.authn.domain.lockout import LockoutPolicy
from accord.authn.domain.set_tokens import ReceivedSignal
from accord.authn.handlers import (
    IDENTITY_EVENTS,
    on_access_decided,
    on_access_granted,
    on_authn_failed,
    on_authn_succeeded,
    on_enrolment_requested,
    on_identity_event,
    on_mfa_enrolled,
    on_security_signal,
    on_session_revoke_requested,
)
from accord.authn.ports import Ports, PortsOf
from accord.authn.settings import AuthnSettings
from accord.authn.signals import ConnSignals, SendSignal
from accord.authn.ssf_keys import load_signing_key
from accord.events import (
    AccessDecided,
    AccessGranted,
    AuthnFailed,
    AuthnSucceeded,
    Envelope,
    MfaEnrolled,
    MfaEnrolmentRequested,
    SessionRevokeRequested,
)
from accord.runtime.routes import HandlerContext, Route, Typed, on, table
from accord.runtime.service import Runtime, ServiceDefinition

NAME = "authn"


def postgres_ports(policy: LockoutPolicy, send: SendSignal) -> PortsOf:
    """Ports over PostgreSQL inside a transaction, with this policy and transmitter."""

    def ports(conn: asyncpg.Connection, source: str) -> Ports:
        return Ports(
            identities=PostgresIdentities(conn),
            lockouts=PostgresLockouts(conn),
            requests=PostgresRequests(conn),
            enrolments=PostgresEnrolments(conn),
            factors=factors.PostgresFactors(conn, source),
            signals=ConnSignals(conn, send),
            policy=policy,
            source=source,
        )

    return ports


def routes_of(ports_of: PortsOf) -> Mapping[str, Route]:
    """Authn's typed routes, each with its ports built from the handler's context."""

    def ports(ctx: HandlerContext) -> Ports:
        return ports_of(ctx.conn, ctx.source)

    typed: list[Typed[Any, HandlerContext, Ports, list[Envelope]]] = [
        on(IDENTITY_EVENTS, on_identity_event, ports),
        on(AuthnFailed, on_authn_failed, ports),
        on(AuthnSucceeded, on_authn_succeeded, ports),
        on(AccessGranted, on_access_granted, ports),
        on(AccessDecided, on_access_decided, ports),
        on(MfaEnrolmentRequested, on_enrolment_requested, ports),
        on(MfaEnrolled, on_mfa_enrolled, ports),
        on(SessionRevokeRequested, on_session_revoke_requested, ports),
    ]
    return table(typed)


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
    ports_of = postgres_ports(policy, transmitter.sender(NAME, signer))
    receiver = ssf_api.receiver_of(settings)

    async def close_receiver(runtime: Runtime) -> None:
        await receiver.keys.aclose()

    async def react(conn: asyncpg.Connection, signal: ReceivedSignal) -> list[Envelope]:
        """A security signal from an identity provider drives the same flows as failures."""
        return await on_security_signal(signal, ports_of(conn, source))

    def routes(runtime: Runtime) -> Mapping[str, Route]:
        return routes_of(ports_of)

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        factors_api.configure(app, runtime, settings)
        access_pass_api.configure(app, runtime, settings)
        lockout_api.configure(app, runtime, ports_of)
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
