"""The Shared Signals receiver: SETs identity providers push to Accord (RFC 8935).

A SET is taken only when its signature verifies against the JWKS of the trusted issuer it
names, its audience is ours, it is fresh, its jti is new and its subject is an identity
Accord knows. The jti is remembered in the same transaction as what Accord does about it
(a SecuritySignalReceived event and the reaction's events), so a replay finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import yaml

from accord.authn.adapters import identities, ssf_store
from accord.authn.domain import set_tokens
from accord.authn.domain.set_tokens import CONTROL, CheckedSet, SetRejected
from accord.authn.domain.set_tokens import ReceivedSignal as ReceivedSignal  # re-exported
from accord.events import Envelope, SecuritySignalReceived, new_event
from accord.runtime.outbox import enqueue
from accord.runtime.security.oidc import JwksKeys, KeysUnavailable, TokenRejected

log = logging.getLogger(__name__)


#: What authn does about a signal (lock, revoke sessions): events to enqueue with it.
React = Callable[[asyncpg.Connection, ReceivedSignal], Awaitable[list[Envelope]]]
Lookup = Callable[[asyncpg.Connection, str], Awaitable[str | None]]


@dataclass(frozen=True)
class TrustedTransmitter:
    """An identity provider whose SETs the receiver takes (the transmitters file)."""

    issuer: str
    jwks_uri: str
    audience: str
    callers: frozenset[str] = frozenset()
    """When set, only these authenticated callers may push this issuer's SETs."""


class TransmittersFileError(ValueError):
    """The transmitters file cannot be used."""


def load_transmitters(
    path: Path | None, *, allow_http: bool = False
) -> dict[str, TrustedTransmitter]:
    """The trusted issuers: a YAML list (or `transmitters:` list) of issuer, jwks_uri,
    audience and optionally callers. No file: no issuer is trusted. Issuers and jwks_uris
    are https URLs (SSF 1.0: keys fetched over plain http could be anyone's), http only
    with `allow_http` (development)."""
    if path is None:
        log.warning("Shared Signals receiver: no transmitters file, every pushed SET is refused")
        return {}
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise TransmittersFileError(f"cannot read {path}: {type(error).__name__}") from None
    entries = loaded.get("transmitters") if isinstance(loaded, dict) else loaded
    if not isinstance(entries, list):
        raise TransmittersFileError(f"{path} must hold a list of transmitters")
    trusted: dict[str, TrustedTransmitter] = {}
    for number, entry in enumerate(entries, 1):
        fields = entry if isinstance(entry, dict) else {}
        issuer, jwks_uri, audience = (fields.get(k) for k in ("issuer", "jwks_uri", "audience"))
        callers = fields.get("callers") or []
        if not all(isinstance(v, str) and 0 < len(v) <= 256 for v in (issuer, audience)):
            raise TransmittersFileError(f"transmitter {number}: issuer and audience are needed")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise TransmittersFileError(f"transmitter {number}: jwks_uri must be an http(s) URL")
        if not isinstance(callers, list) or not all(isinstance(c, str) for c in callers):
            raise TransmittersFileError(f"transmitter {number}: callers must be a list")
        assert isinstance(issuer, str)
        schemes = ("https://", "http://") if allow_http else ("https://",)
        if not (issuer.startswith(schemes) and jwks_uri.startswith(schemes)):
            raise TransmittersFileError(
                f"transmitter {number}: issuer and jwks_uri must be https URLs"
                " (plain http only where ACCORD_SSF_ALLOW_HTTP allows it, for development)"
            )
        assert isinstance(audience, str)
        trusted[issuer] = TrustedTransmitter(issuer, jwks_uri, audience, frozenset(callers))
    log.info("Shared Signals receiver trusts %d issuers", len(trusted))
    return trusted


class JwksUnavailable(Exception):
    """An issuer's JWKS cannot be fetched now (answered 503: the transmitter retries)."""


class JwksCache:
    """The trusted issuers' key sets: `accord.runtime.security.oidc.JwksKeys` (cached, fetched
    again when stale or a token names a new kid, one fetch at a time, private keys never
    used), one per issuer, over one HTTP client."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        min_refresh_s: float = 30.0,
        cache_s: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            timeout=timeout_s, transport=transport, follow_redirects=False
        )
        self._min_refresh_s = min_refresh_s
        self._cache_s = cache_s
        self._sets: dict[str, JwksKeys] = {}

    async def key_for(
        self, transmitter: TrustedTransmitter, kid: str | None, alg: str
    ) -> jwt.PyJWK | None:
        """The issuer's key `kid` names for `alg`, or None; JwksUnavailable when its key set
        cannot be had."""
        keys = self._sets.get(transmitter.issuer)
        if keys is None:
            keys = JwksKeys(
                transmitter.jwks_uri,
                http=self._http,
                cache_s=self._cache_s,
                min_refetch_interval_s=self._min_refresh_s,
            )
            self._sets[transmitter.issuer] = keys
        try:
            return await keys.signing_key(kid, alg)
        except KeysUnavailable:
            log.warning("cannot fetch a transmitter's JWKS", extra={"issuer": transmitter.issuer})
            raise JwksUnavailable(f"the JWKS of {transmitter.issuer} is unavailable") from None
        except TokenRejected:
            return None

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


@dataclass
class Receiver:
    """Verifies pushed SETs: signature, issuer, caller, audience, freshness."""

    transmitters: Mapping[str, TrustedTransmitter]
    keys: JwksCache
    max_age_s: float
    clock: Callable[[], float] = time.time

    async def verify(self, token: str, caller: str) -> CheckedSet:
        """The checked SET, or SetRejected naming the RFC 8935 error."""
        header, issuer = set_tokens.unverified_header_and_issuer(token)
        transmitter = self.transmitters.get(issuer)
        if transmitter is None:
            raise SetRejected("invalid_issuer", "the issuer is not a trusted transmitter")
        if transmitter.callers and caller not in transmitter.callers:
            raise SetRejected("access_denied", "this caller may not push this issuer's SETs")
        kid = header.get("kid")
        alg = str(header["alg"])
        key = await self.keys.key_for(transmitter, kid if isinstance(kid, str) else None, alg)
        if key is None:
            raise SetRejected("invalid_key", "no key of the issuer matches the SET's kid")
        claims = set_tokens.verify_signature(token, key, alg)
        return set_tokens.check_claims(
            claims,
            issuer=transmitter.issuer,
            audience=transmitter.audience,
            now=self.clock(),
            max_age_s=self.max_age_s,
        )


async def _live(conn: asyncpg.Connection, user_id: str) -> str | None:
    status = await identities.status_of(conn, user_id)
    return user_id if status not in (None, "deleted") else None


async def resolve_subject(
    conn: asyncpg.Connection,
    subject: Mapping[str, Any],
    *,
    by_user_id: Lookup = _live,
    by_email: Lookup = identities.find_by_email,
) -> str | None:
    """The identity a subject names: the first candidate Accord knows."""
    for kind, value in set_tokens.subject_candidates(subject):
        found = await (by_user_id if kind == "user_id" else by_email)(conn, value)
        if found is not None:
            return found
    return None


async def accept(
    conn: asyncpg.Connection,
    schema: str,
    checked: CheckedSet,
    *,
    source: str,
    react: React,
) -> ReceivedSignal | None:
    """Take a checked SET inside the caller's transaction: remember its jti, record the
    signal and enqueue the reaction's events. Stream control events (verification) are
    only remembered. Raises SetRejected on a replay or an unknown subject."""
    if not await ssf_store.remember_jti(conn, checked.issuer, checked.jti):
        raise SetRejected("invalid_request", "replayed: this jti was received before")
    if checked.event_uri in CONTROL:
        log.info("SSF control event received", extra={"event": checked.event_uri})
        return None
    user_id = await resolve_subject(conn, checked.subject)
    if user_id is None:
        raise SetRejected("invalid_request", "unknown subject: no identity matches sub_id")
    action = set_tokens.action_for(checked.event_uri, checked.event)
    signal = ReceivedSignal(
        user_id, checked.issuer, checked.jti, checked.event_uri, checked.claims, action
    )
    received = SecuritySignalReceived(
        user_id=user_id,
        issuer=checked.issuer,
        jti=checked.jti,
        event=checked.event_uri,
        action=action,
    )
    events = [new_event(received, source=source), *await react(conn, signal)]
    await enqueue(conn, schema, events)
    log.info(
        "security signal received",
        extra={"issuer": checked.issuer, "event": checked.event_uri, "action": action},
    )
    return signal
