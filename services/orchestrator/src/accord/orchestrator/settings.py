"""Orchestrator settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

from pydantic import Field

from accord.events.catalogue.authn import Factor
from accord.runtime.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """Environment of the orchestrator."""

    http_port: int = Field(default=8701, validation_alias="ACCORD_ORCHESTRATOR_PORT")
    birthright_targets: str = Field(
        default="scim-demo",
        description="Comma-separated targets every joiner gets an account in.",
    )

    birthright_file: Path | None = Field(
        default=None,
        description="YAML birthright rules; replaces ACCORD_BIRTHRIGHT_TARGETS when set.",
    )

    joiner_mfa_factors: str = Field(
        default="",
        description="Factors (totp, webauthn; comma-separated) a joiner is asked to enrol"
        " when its saga completes (mfa.enrolment_requested); empty: no enrolment step.",
        pattern=r"^\s*((totp|webauthn)\s*(,\s*(totp|webauthn)\s*)*)?$",
    )

    def mfa_enrolment_factors(self) -> tuple[Factor, ...]:
        """The factors of ACCORD_JOINER_MFA_FACTORS, in order, each once."""
        names = (n.strip() for n in self.joiner_mfa_factors.split(","))
        return tuple(dict.fromkeys(cast(Factor, n) for n in names if n))

    joiner_on_failure: Literal["keep", "rollback"] = Field(
        default="keep",
        description="When a joiner's target fails for good: keep the other accounts and fail"
        " the saga for a retry, or roll them back (delete what was created).",
    )
    leaver_retention_s: float = Field(
        default=30 * 24 * 3600.0,
        ge=0,
        description="Seconds a deleted identity's accounts stay disabled before they are"
        " deleted; 0 deletes them at once.",
    )
    saga_retry_base_s: float = Field(
        default=30.0,
        gt=0,
        description="First delay of a saga's own retries (leavers, transient failures);"
        " doubles per failed round.",
    )
    saga_retry_cap_s: float = Field(
        default=900.0,
        gt=0,
        description="Longest delay between a saga's own retries.",
    )
    saga_transient_rounds: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Failed rounds a saga other than a leaver (joiner, mover, reactivation,"
        " access grant or revocation) retries by itself when every failure was transient"
        " (target down, throttling, no answer); 0: never.",
    )
    saga_step_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="A saga step with no answer from the provisioner within this fails;"
        " longer than the provisioner's own retries.",
    )
    timer_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often due timers (retries, retention; the workflow engine's"
        " wake-ups, time triggers and queued effects) are looked for.",
    )

    workflows_dir: Path | None = Field(
        default=None,
        description="Folder of lifecycle workflow files (YAML, issue 22); set, the workflow"
        " engine runs them (their account tasks as sagas), reloads the folder when it"
        " changes and serves the runs API; unset, the engine is off.",
    )
    targets_file: Path | None = Field(
        default=None,
        description="The provisioner's targets file, when the orchestrator can read it:"
        " workflow files naming an unknown target are then refused at load.",
    )
    authn_url: str | None = Field(
        default=None,
        description="authn's base URL, for the temporary_access_pass workflow task.",
    )
    authn_token_file: Path | None = Field(
        default=None,
        description="File holding an API token with mfa:manage, sent to authn (read at each"
        " call, so a rotated token is used without a restart).",
    )
    authz_url: str | None = Field(
        default=None,
        description="authz's base URL, for the revoke_entitlement workflow task.",
    )
    authz_token_file: Path | None = Field(
        default=None,
        description="File holding an API token sent to authz (read at each call).",
    )
    workflow_callback_url: str | None = Field(
        default=None,
        description="The orchestrator's base URL as custom extensions reach it (e.g."
        " https://accord.example.com); a call_extension task that waits for a callback"
        " gives its extension <this>/v1/workflow-callbacks/<run>/<task>. Unset: such a"
        " task fails, saying why.",
    )

    def targets(self) -> list[str]:
        """The birthright targets as a list."""
        return [t.strip() for t in self.birthright_targets.split(",") if t.strip()]
