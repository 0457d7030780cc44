"""Authz settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from accord.authz.domain.policy_files import default_policy_dir
from accord.runtime.settings import ServiceSettings


class AuthzSettings(ServiceSettings):
    """Environment of authz."""

    http_port: int = Field(default=8703, validation_alias="ACCORD_AUTHZ_PORT")
    policy_dir: Path = Field(
        default_factory=default_policy_dir,
        description="Folder of *.cedar policies, schema.cedarschema and catalogue.yaml.",
    )
    approval_timeout_s: float = Field(
        default=3 * 24 * 3600.0,
        ge=0,
        description="How long an approval stage waits for a decision; 0: for ever.",
    )
    approval_on_timeout: Literal["escalate", "expire"] = Field(
        default="escalate",
        description="An overdue stage escalates once (manager's manager, the application's"
        " escalation approvers) and then expires, or expires at once.",
    )
    timer_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often overdue approvals and expired grants are looked for.",
    )
    decision_log_rate: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of /v1/authorize decisions emitted as authz.decided events"
        " (1: every one, 0: none).",
    )
    policy_reload_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="How often the policy folder is checked for changes (reloaded when"
        " changed; a bad set is refused and the last good one stays).",
    )
