"""Security Event Tokens (RFC 8417) as the Shared Signals Framework 1.0 profiles them.

Event type URIs (CAEP 1.0, RISC 1.0, SSF 1.0), the claims of a SET Accord transmits
(`sub_id` per RFC 9493, exactly one event), ES256 signing with `typ: secevent+jwt`, and the
checks a received SET must pass, each refusal carrying its RFC 8935 error code. Pure: the
caller supplies keys, key sets and the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

from accord.events.catalogue.authn import SignalAction

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"

SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
RISK_LEVEL_CHANGE = CAEP + "risk-level-change"
ACCOUNT_DISABLED = RISC + "account-disabled"
ACCOUNT_ENABLED = RISC + "account-enabled"
CREDENTIAL_COMPROMISE = RISC + "credential-compromise"
VERIFICATION = SSF + "verification"
STREAM_UPDATED = SSF + "stream-updated"

#: What Accord's transmitter can send on a stream (events_supported).
TRANSMITTED: tuple[str, ...] = (
    SESSION_REVOKED,
    CREDENTIAL_CHANGE,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
)
#: Stream control events: about the stream (sub_id = the stream), sent whatever was requested.
CONTROL: tuple[str, ...] = (VERIFICATION, STREAM_UPDATED)

SET_TYP = "secevent+jwt"
#: Asymmetric algorithms only: never `none`, never a shared secret.
ACCEPTED_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "EdDSA")
SUBJECT_FORMATS = frozenset({"opaque", "email", "iss_sub", "aliases", "complex"})
DEFAULT_SKEW_S = 60.0

InitiatingEntity = Literal["admin", "user", "policy", "system"]
ErrorCode = Literal[
    "invalid_request",
    "invalid_key",
    "invalid_issuer",
    "invalid_audience",
    "authentication_failed",
    "access_denied",
]


class SetRejected(Exception):
    """A received SET fails a check; `err` is the RFC 8935 error code to answer with."""

    def __init__(self, err: ErrorCode, description: str) -> None:
        super().__init__(description)
        self.err: ErrorCode = err
        self.description = description


class SetSigner(Protocol):
    """Signs SET claims into a compact JWS and publishes the keys that verify them."""

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The signed SET."""
        ...

    def jwks(self) -> dict[str, Any]:
        """The public JWKS receivers fetch from `jwks_uri`."""
        ...


# --- subjects (RFC 9493) ---------------------------------------------------------------


def opaque(identifier: str) -> dict[str, str]:
    """An opaque subject identifier."""
    return {"format": "opaque", "id": identifier}


def user_subject(user_id: str, email: str | None) -> dict[str, Any]:
    """An Accord identity: its user_id (opaque), with its e-mail as an alias when known."""
    if not email:
        return opaque(user_id)
    return {
        "format": "aliases",
        "identifiers": [opaque(user_id), {"format": "email", "email": email}],
    }


# --- event members ---------------------------------------------------------------------


def _caep(
    event_timestamp: int | None,
    initiating_entity: InitiatingEntity | None,
    reason_admin: str | None,
    reason_user: str | None,
) -> dict[str, Any]:
    members: dict[str, Any] = {}
    if event_timestamp is not None:
        members["event_timestamp"] = int(event_timestamp)
    if initiating_entity is not None:
        members["initiating_entity"] = initiating_entity
    # CAEP 1.0: reasons are localisable objects keyed by BCP 47 language tags.
    if reason_admin:
        members["reason_admin"] = {"en": reason_admin}
    if reason_user:
        members["reason_user"] = {"en": reason_user}
    return members


def session_revoked(
    *,
    event_timestamp: int | None = None,
    initiating_entity: InitiatingEntity | None = "policy",
    reason_admin: str | None = None,
    reason_user: str | None = None,
) -> dict[str, Any]:
    """CAEP session-revoked members."""
    return _caep(event_timestamp, initiating_entity, reason_admin, reason_user)


def credential_change(
    *,
    credential_type: str,
    change_type: Literal["create", "revoke", "update", "delete"],
    friendly_name: str | None = None,
    event_timestamp: int | None = None,
    initiating_entity: InitiatingEntity | None = None,
    reason_admin: str | None = None,
) -> dict[str, Any]:
    """CAEP credential-change members (credential_type: password, app, fido2-roaming, ...)."""
    members = _caep(event_timestamp, initiating_entity, reason_admin, None)
    members["credential_type"] = credential_type
    members["change_type"] = change_type
    if friendly_name:
        members["friendly_name"] = friendly_name
    return members


def account_disabled(reason: Literal["hijacking", "bulk-account"] | None = None) -> dict[str, Any]:
    """RISC account-disabled members."""
    return {"reason": reason} if reason else {}


def account_enabled() -> dict[str, Any]:
    """RISC account-enabled members (none)."""
    return {}


# --- building and signing --------------------------------------------------------------


def build_set(
    *,
    issuer: str,
    audience: str | Sequence[str],
    event_uri: str,
    event: Mapping[str, Any],
    subject: Mapping[str, Any],
    now: float,
    jti: str | None = None,
    txn: str | None = None,
) -> dict[str, Any]:
    """The claims of one SET: one event about one subject (SSF 1.0: `sub_id`, no `sub`)."""
    aud: str | list[str] = audience if isinstance(audience, str) else list(audience)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": aud,
        "iat": int(now),
        "jti": jti or uuid.uuid4().hex,
        "sub_id": dict(subject),
        "events": {event_uri: dict(event)},
    }
    if txn:
        claims["txn"] = txn
    return claims


def sign_set(claims: Mapping[str, Any], key: EllipticCurvePrivateKey, kid: str) -> str:
    """The claims as a compact ES256 JWS with `typ: secevent+jwt` and the key's `kid`."""
    return jwt.encode(dict(claims), key, algorithm="ES256", headers={"typ": SET_TYP, "kid": kid})


# --- receiving -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedSet:
    """A received SET that passed every check."""

    issuer: str
    jti: str
    event_uri: str
    event: Mapping[str, Any]
    subject: Mapping[str, Any]
    claims: Mapping[str, Any]


def unverified_header_and_issuer(token: str) -> tuple[dict[str, Any], str]:
    """The JOSE header and `iss` of a token not yet verified: which key set to check it by."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise SetRejected("invalid_request", "malformed: not a signed JWT") from None
    typ = str(header.get("typ", "")).lower()
    if typ not in (SET_TYP, "application/" + SET_TYP):
        raise SetRejected("invalid_request", "malformed: the JOSE typ must be secevent+jwt")
    if header.get("alg") not in ACCEPTED_ALGORITHMS:
        raise SetRejected("invalid_key", "the signing algorithm is not accepted")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise SetRejected("invalid_issuer", "the SET has no iss")
    return header, issuer


def verify_signature(token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
    """The claims if the signature holds; issuer, audience and age are checked after."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            options={"verify_aud": False, "verify_iss": False, "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        raise SetRejected("invalid_request", "expired: the SET's exp has passed") from None
    except jwt.ImmatureSignatureError:
        raise SetRejected("invalid_request", "not yet valid: nbf is in the future") from None
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
        raise SetRejected("invalid_key", "the signature does not verify") from None
    except (TypeError, ValueError):
        # PyJWT raises these when the key's type does not fit the token's algorithm.
        raise SetRejected("invalid_key", "the key does not fit the signing algorithm") from None
    except jwt.PyJWTError:
        raise SetRejected("invalid_request", "malformed: the JWS cannot be decoded") from None
    return claims


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audience: str,
    now: float,
    max_age_s: float,
    skew_s: float = DEFAULT_SKEW_S,
) -> CheckedSet:
    """Issuer, audience, freshness by `iat`, a `jti`, exactly one event, a known subject."""
    if claims.get("iss") != issuer:
        raise SetRejected("invalid_issuer", "iss is not the expected issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in audiences:
        raise SetRejected("invalid_audience", "aud does not name this receiver")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise SetRejected("invalid_request", "malformed: iat is missing or not a number")
    if iat > now + skew_s:
        raise SetRejected("invalid_request", "iat is in the future")
    if iat < now - max_age_s:
        raise SetRejected("invalid_request", f"stale: issued more than {max_age_s:.0f} s ago")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256 or "\x00" in jti:
        raise SetRejected("invalid_request", "malformed: jti is missing or too long")
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise SetRejected("invalid_request", "malformed: a SET carries exactly one event")
    ((event_uri, event),) = events.items()
    if not isinstance(event, dict) or len(event_uri) > 256:
        raise SetRejected("invalid_request", "malformed: the event is not an object")
    subject = claims.get("sub_id", event.get("subject"))
    if not _known_subject(subject):
        raise SetRejected("invalid_request", "malformed: sub_id has an unknown format")
    assert isinstance(subject, dict)
    return CheckedSet(issuer, jti, event_uri, event, subject, claims)


def _known_subject(subject: object) -> bool:
    if not isinstance(subject, dict) or subject.get("format") not in SUBJECT_FORMATS:
        return False
    fmt = subject["format"]
    if fmt == "aliases":
        members = subject.get("identifiers")
        return isinstance(members, list) and bool(members) and all(map(_known_subject, members))
    if fmt == "complex":
        return _known_subject(subject.get("user"))
    required = {"opaque": ("id",), "email": ("email",), "iss_sub": ("iss", "sub")}[fmt]
    return all(isinstance(subject.get(name), str) and subject[name] for name in required)


def subject_candidates(subject: Mapping[str, Any]) -> list[tuple[str, str]]:
    """How a subject may name an identity, in order: ("user_id", id) or ("email", address).

    Opaque ids and `iss_sub` subs are taken as Accord user_ids; a complex subject's `user`
    member and each alias are tried in turn.
    """
    fmt = subject.get("format")
    if fmt == "opaque":
        return [("user_id", str(subject["id"]))]
    if fmt == "iss_sub":
        return [("user_id", str(subject["sub"]))]
    if fmt == "email":
        return [("email", str(subject["email"]))]
    if fmt == "complex" and isinstance(subject.get("user"), dict):
        return subject_candidates(subject["user"])
    if fmt == "aliases" and isinstance(subject.get("identifiers"), list):
        return [c for s in subject["identifiers"] for c in subject_candidates(s)]
    return []


#: What Accord does about a received signal (the SecuritySignalReceived event's action).
Action = SignalAction


def action_for(event_uri: str, event: Mapping[str, Any]) -> Action:
    """What Accord does about a received signal: lock the identity, end its sessions, or
    only record it."""
    if event_uri in (ACCOUNT_DISABLED, CREDENTIAL_COMPROMISE):
        return "lock"
    if event_uri == RISK_LEVEL_CHANGE and str(event.get("current_level", "")).upper() == "HIGH":
        return "lock"
    if event_uri == SESSION_REVOKED:
        return "revoke_sessions"
    return "none"


@dataclass(frozen=True)
class ReceivedSignal:
    """A verified signal about one identity, handed to the reaction."""

    user_id: str
    issuer: str
    jti: str
    event_uri: str
    claims: Mapping[str, Any]
    action: Action = "none"
    """What the signal asks for (the SecuritySignalReceived event's action)."""
