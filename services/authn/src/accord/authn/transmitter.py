"""The Shared Signals transmitter: one signed SET per stream that wants the event and
covers the identity, queued in the caller's transaction; the push loop or the receiver's
poll takes it from there."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from accord.authn import signals
from accord.authn.adapters import identities, ssf_store
from accord.authn.adapters.ssf_store import QueuedSet, Stream
from accord.authn.domain import set_tokens
from accord.authn.domain.set_tokens import SetSigner
from accord.authn.signals import SendSignal, Signal

log = logging.getLogger(__name__)


async def transmit(
    conn: asyncpg.Connection,
    schema: str,
    *,
    user_id: str,
    event_uri: str,
    event: Mapping[str, Any],
    email: str | None,
    signer: SetSigner | None,
    txn: str,
) -> int:
    """Queue the event about one identity to every stream that asked for it; how many.

    `event` holds the event's members (see the builders in `domain.set_tokens`); the
    subject is the user_id (opaque), with the e-mail as an alias when known; `txn` names
    the cause, shared by every SET it produces. Without a signer (no key configured)
    nothing is queued.
    """
    if signer is None:
        # Said once at start-up (ssf_keys); per signal it would drown the log.
        log.debug("SET not sent: no SSF signing key", extra={"event": event_uri})
        return 0
    streams = await ssf_store.streams_covering(conn, event_uri, user_id, email)
    subject = set_tokens.user_subject(user_id, email)
    queued = [
        _signed(stream, signer, event_uri, event, subject, user_id=user_id, txn=txn)
        for stream in streams
    ]
    await ssf_store.queue_sets(conn, schema, queued)
    if queued:
        log.info(
            "SETs queued",
            extra={"event": event_uri, "user_id": user_id, "streams": len(queued)},
        )
    return len(queued)


async def queue_control(
    conn: asyncpg.Connection,
    schema: str,
    stream: Stream,
    event_uri: str,
    event: Mapping[str, Any],
    signer: SetSigner,
) -> str:
    """Queue a stream control event (verification, stream-updated) about the stream itself;
    returns its jti. Each is a cause of its own (one request): a txn of its own."""
    subject = set_tokens.opaque(stream.config.stream_id)
    txn = uuid.uuid4().hex
    queued = _signed(stream, signer, event_uri, event, subject, user_id=None, txn=txn)
    await ssf_store.queue_sets(conn, schema, [queued])
    return queued.jti


def _signed(
    stream: Stream,
    signer: SetSigner,
    event_uri: str,
    event: Mapping[str, Any],
    subject: Mapping[str, Any],
    *,
    user_id: str | None,
    txn: str,
) -> QueuedSet:
    claims = set_tokens.build_set(
        issuer=stream.config.iss,
        audience=stream.config.audience(),
        event_uri=event_uri,
        event=event,
        subject=subject,
        now=time.time(),
        txn=txn,
    )
    return QueuedSet(
        jti=claims["jti"],
        stream_id=stream.config.stream_id,
        user_id=user_id,
        event_uri=event_uri,
        token=signer.sign(claims),
    )


def _members(signal: Signal, reason: str) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    if signal == "session-revoked":
        return set_tokens.SESSION_REVOKED, set_tokens.session_revoked(
            event_timestamp=now, reason_admin=reason[:256]
        )
    if signal == "account-disabled":
        return set_tokens.ACCOUNT_DISABLED, set_tokens.account_disabled()
    if signal == "account-enabled":
        return set_tokens.ACCOUNT_ENABLED, set_tokens.account_enabled()
    # The port says only that a factor changed: authenticator apps and WebAuthn keys alike.
    return set_tokens.CREDENTIAL_CHANGE, set_tokens.credential_change(
        credential_type="app", change_type="update", event_timestamp=now, reason_admin=reason
    )


def sender(schema: str, signer: SetSigner | None) -> SendSignal:
    """The `signals.SendSignal` port over `transmit`: CAEP and RISC members from the signal,
    the identity's e-mail from authn's projection."""

    if signer is None:
        return signals.send_nothing  # no key: no stream lookups, no e-mail lookups

    async def send(
        conn: asyncpg.Connection, user_id: str, signal: Signal, reason: str, *, txn: str
    ) -> int:
        event_uri, members = _members(signal, reason)
        email = await identities.email_of(conn, user_id)
        return await transmit(
            conn,
            schema,
            user_id=user_id,
            event_uri=event_uri,
            event=members,
            email=email,
            signer=signer,
            txn=txn,
        )

    return send
