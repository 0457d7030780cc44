"""Authn settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from accord.runtime.settings import ServiceSettings


class AuthnSettings(ServiceSettings):
    """Environment of authn."""

    http_port: int = Field(default=8705, validation_alias="ACCORD_AUTHN_PORT")
    public_url: str = Field(
        default="http://127.0.0.1:8705",
        validation_alias="ACCORD_AUTHN_PUBLIC_URL",
        description="Where receivers and users reach authn: the SSF issuer, the base of"
        " the endpoints in the SSF configuration metadata.",
    )
    # --- factors ---------------------------------------------------------------------------
    credential_keys: SecretStr | None = Field(
        default=None,
        validation_alias="ACCORD_AUTHN_CREDENTIAL_KEYS",
        description="Keys that encrypt factor secrets at rest (AES-256-GCM): `id:base64key`"
        " pairs, comma-separated, the first encrypts, all decrypt (rotation). Required.",
    )
    totp_issuer: str = Field(
        default="Accord",
        description="The issuer shown in authenticator apps (TOTP provisioning URI).",
    )
    webauthn_rp_id: str = Field(
        default="localhost",
        description="WebAuthn relying party id: the sign-in site's registrable domain.",
    )
    webauthn_rp_name: str = "Accord"
    webauthn_origins: str = Field(
        default="http://localhost:8705",
        description="Origins the browser may report for WebAuthn ceremonies, comma-separated.",
    )
    challenge_ttl_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        validation_alias="ACCORD_AUTHN_CHALLENGE_TTL_S",
        description="How long a pending enrolment or WebAuthn challenge stays valid.",
    )
    # --- lockout ---------------------------------------------------------------------------
    lockout_threshold: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed sign-ins within the window that lock an identity.",
    )
    lockout_window_s: float = Field(
        default=600.0,
        gt=0,
        description="The sliding window failed sign-ins are counted in.",
    )
    # --- Shared Signals --------------------------------------------------------------------
    ssf_signing_key_file: Path | None = Field(
        default=None,
        description="PEM private key (EC P-256) that signs the transmitter's Security Event"
        " Tokens; its public half is served as the JWKS. Required to transmit.",
    )
    ssf_transmitters_file: Path | None = Field(
        default=None,
        description="YAML list of the identity providers whose SETs the receiver trusts"
        " (issuer, jwks_uri, audience).",
    )
    ssf_push_timeout_s: float = Field(default=5.0, gt=0, le=60)
    ssf_max_age_s: float = Field(
        default=300.0,
        gt=0,
        description="Received SETs older than this (by `iat`) are refused as stale.",
    )
    ssf_allow_http: bool = Field(
        default=False,
        description="Development only: accept plain http for the transmitter's issuer (and so"
        " its jwks_uri and endpoints), push endpoints and trusted transmitters' issuer and"
        " jwks_uri. SSF 1.0 requires https; without this flag authn refuses http.",
    )
    ssf_delivery_poll_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often pending push deliveries are looked for (NOTIFY wakes it sooner).",
    )
