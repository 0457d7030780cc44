"""Verification of OIDC access tokens (JWT) against the issuer's published JSON Web Key Set."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx
import jwt
from jwt.types import Options

log = logging.getLogger(__name__)

#: The asymmetric algorithms we accept, with the JWK key type each one needs.
_KEY_TYPES: Mapping[str, str] = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA"),
    **dict.fromkeys(("ES256", "ES384", "ES512", "ES256K"), "EC"),
    "EdDSA": "OKP",
}
_FETCH_TIMEOUT_S = 5.0
# Far above any real access token; bounds the work an anonymous caller can make us do.
_MAX_TOKEN_CHARS = 16_384
# 9999-12-31T23:59:59Z: the last instant a datetime can hold.
_MAX_TIMESTAMP = 253_402_300_799.0
# Time claims are checked in _accept against our injectable clock, the issuer exactly there too.
_OPTIONS: Options = {
    "require": ["exp", "iss", "aud", "sub"],
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_iss": False,
    "enforce_minimum_key_length": True,  # raise on weak keys instead of warning per request
}
#: Short reasons for what PyJWT raises; its own messages are not meant for our logs.
_REASONS: Mapping[type[Exception], str] = {
    jwt.InvalidSignatureError: "bad signature",
    jwt.DecodeError: "malformed token",
    jwt.InvalidAudienceError: "wrong audience",
    jwt.InvalidKeyError: "unusable signing key",
}


@dataclass(frozen=True)
class OidcConfig:
    """Which issuer Accord trusts for access tokens, and how it verifies them."""

    issuer: str
    audience: str
    jwks_url: str
    roles_claim: str = "roles"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    leeway_s: int = 30
    jwks_cache_s: int = 300
    min_refetch_interval_s: float = 10.0

    def __post_init__(self) -> None:
        # "none" and HS* are refused here: with a public JWKS they are forgeable by anyone.
        if not self.algorithms or not set(self.algorithms) <= _KEY_TYPES.keys():
            raise ValueError(f"algorithms must be among {sorted(_KEY_TYPES)}")
        if not (self.issuer and self.audience and self.jwks_url and self.roles_claim):
            raise ValueError("issuer, audience, jwks_url and roles_claim must be set")
        if self.leeway_s < 0 or self.jwks_cache_s <= 0 or self.min_refetch_interval_s < 0:
            raise ValueError("leeway_s, jwks_cache_s and min_refetch_interval_s out of range")


@dataclass(frozen=True)
class VerifiedToken:
    """Who an access token speaks for and what it grants, after verification."""

    subject: str
    roles: frozenset[str]
    scopes: frozenset[str]
    expires_at: datetime
    claims: Mapping[str, Any]


class TokenRejected(Exception):
    """An access token that must not be trusted; str() is a short reason, safe to log."""


class KeysUnavailable(TokenRejected):
    """The issuer's key set cannot be fetched now and no fresh copy is cached."""


class JwksKeys:
    """An issuer's signing keys from its JWKS URL (OIDC access tokens, Security Event
    Tokens): cached for `cache_s`, fetched again when stale or when a token names a new
    kid (at most every `min_refetch_interval_s`, so unknown kids cannot make us fetch in a
    loop), one fetch at a time; private and encryption keys are never used."""

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient,
        cache_s: float = 300,
        min_refetch_interval_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._http = http
        self._cache_s = cache_s
        self._min_refetch_interval_s = min_refetch_interval_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: tuple[dict[str, Any], ...] = ()
        self._fetches = 0
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_fetch_failed = False

    async def signing_key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The issuer's key for this token, refetching the JWKS when stale or the kid is new.

        :raises KeysUnavailable: no fresh key set could be had.
        :raises TokenRejected: no single usable key fits the kid and the algorithm.
        """
        key = self._lookup(kid, alg) if self._fresh(self._clock()) else None
        if key is None:
            fetches_seen = self._fetches
            async with self._lock:
                # Whoever held the lock before us may have fetched already: share that result.
                if self._fetches == fetches_seen and self._may_fetch(self._clock()):
                    await self._fetch()
                    self._fetches += 1  # counted once done: verifications queued meanwhile share it
                if not self._fresh(self._clock()):
                    raise KeysUnavailable("issuer keys unavailable")
                key = self._lookup(kid, alg)
        if key is None:
            raise TokenRejected("unknown signing key")
        return key

    def _fresh(self, now: float) -> bool:
        """Whether the cached key set is still within its trusted lifetime."""
        return self._fetched_at is not None and now - self._fetched_at < self._cache_s

    def _may_fetch(self, now: float) -> bool:
        """Whether a fetch now is allowed; unknown kids and failures wait out the interval."""
        if self._attempted_at is None or (not self._last_fetch_failed and not self._fresh(now)):
            return True
        return now - self._attempted_at >= self._min_refetch_interval_s

    def _lookup(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The cached key matching kid (or the only one of the right type when kid is absent)."""
        # An "alg" on the JWK pins the key to it (RFC 7517 §4.4); otherwise the type must fit.
        kty = _KEY_TYPES[alg]
        typed = [k for k in self._keys if k.get("kty") == kty and k.get("alg", alg) == alg]
        fitting = typed if kid is None else [k for k in typed if k.get("kid") == kid]
        if len(fitting) != 1:  # none, or ambiguous: guessing between keys is not verifying
            return None
        try:
            # Bound to the token's alg: PyJWK otherwise assumes RS256 for any RSA key without "alg".
            return jwt.PyJWK(fitting[0], algorithm=alg)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            log.warning("issuer key %r unusable for %s", kid, alg)
            raise TokenRejected("unusable signing key") from None

    async def _fetch(self) -> None:
        """Fetch the JWKS, replacing the cache on success and keeping it on failure."""
        self._attempted_at = self._clock()
        url = self._url
        try:
            response = await self._http.get(url, timeout=_FETCH_TIMEOUT_S)
            response.raise_for_status()
            keys = response.json()["keys"]  # KeyError, TypeError: JSON, but not a key set
            if not isinstance(keys, list):
                raise TypeError("'keys' is not a list")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self._last_fetch_failed = True
            log.warning("JWKS fetch from %s failed: %s: %s", url, type(exc).__name__, exc)
            return
        # With a private part ("d") PyJWK builds a private key, whose verify() PyJWT crashes on.
        public = [k for k in keys if isinstance(k, dict) and "d" not in k]
        self._keys = tuple(k for k in public if k.get("use", "sig") == "sig")
        self._fetched_at, self._last_fetch_failed = self._attempted_at, False


class OidcVerifier:
    """Verifies access tokens with the issuer's keys, fetched and cached from its JWKS URL."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=_FETCH_TIMEOUT_S)
        self._clock = clock
        self._keys = JwksKeys(
            config.jwks_url,
            http=self._http,
            cache_s=config.jwks_cache_s,
            min_refetch_interval_s=config.min_refetch_interval_s,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this verifier created it."""
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str) -> VerifiedToken:
        """The verified identity and grants of an access token; raises TokenRejected."""
        # The token text never reaches a message or a traceback: errors are re-raised `from None`.
        if not (isinstance(token, str) and token.isascii() and len(token) <= _MAX_TOKEN_CHARS):
            raise TokenRejected("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        alg = header.get("alg")
        # Checked before any key is looked at: this is what stops "none" and HS256-with-RSA-key.
        if not isinstance(alg, str) or alg not in self._config.algorithms:
            raise TokenRejected("algorithm not allowed")
        key = await self._keys.signing_key(header.get("kid"), alg)
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self._config.audience, options=_OPTIONS
            )
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"missing claim {exc.claim}") from None
        except jwt.PyJWTError as exc:
            raise TokenRejected(_REASONS.get(type(exc), "invalid token")) from None
        return self._accept(claims)

    def _accept(self, claims: dict[str, Any]) -> VerifiedToken:
        """Check the claims PyJWT left to us and build the result."""
        now, leeway = self._clock(), self._config.leeway_s
        # Compared by hand: PyJWT 2.10.0 matched a string issuer as a substring (CVE-2024-53861).
        if claims.get("iss") != self._config.issuer:
            raise TokenRejected("wrong issuer")
        exp = _timestamp(claims, "exp")
        if exp is None or exp <= now - leeway:  # None cannot happen: PyJWT required "exp"
            raise TokenRejected("token expired")
        for name in ("nbf", "iat"):
            # An iat in the future means a skewed issuer clock or a forged token: refuse it too.
            if (stamp := _timestamp(claims, name)) is not None and stamp > now + leeway:
                raise TokenRejected(f"token not yet valid ({name})")
        if not isinstance(subject := claims.get("sub"), str) or not subject:
            raise TokenRejected("missing claim sub")
        return VerifiedToken(
            subject=subject,
            roles=_names(_claim_at(claims, self._config.roles_claim), self._config.roles_claim),
            scopes=_names(claims.get("scope"), "scope") | _names(claims.get("scp"), "scp"),
            expires_at=datetime.fromtimestamp(exp, UTC),
            claims=MappingProxyType(claims),
        )


def _timestamp(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as seconds, None when absent; rejects what is not a sane number."""
    if (value := claims.get(name)) is None:
        return None
    # type(), not isinstance(): True is an int. The range test is also false for NaN and inf.
    if type(value) not in (int, float) or not 0 <= value <= _MAX_TIMESTAMP:
        raise TokenRejected(f"malformed {name}")
    return float(value)


def _claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted path ("realm_access.roles"), or None."""
    # Namespaced claims ("https://acme.example/roles") contain dots but are top-level names.
    node: Any = claims
    for part in [path] if path in claims else path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _names(value: Any, claim: str) -> frozenset[str]:
    """Names from a list of strings or a space-separated string; absent means none."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise TokenRejected(f"malformed {claim} claim")
