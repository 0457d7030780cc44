"""Authz settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from accord.authz.domain.policy_files import default_policy_dir
from accord.runtime.settings import ServiceSettings


class AuthzSettings(ServiceSettings):
    """Environment of authz."""

    http_port: int = Field(default=8703, validation_alias=AliasChoices("ACCORD_AUTHZ_PORT"))
    policy_dir: Path = Field(
        default_factory=default_policy_dir,
        validation_alias=AliasChoices("ACCORD_POLICY_DIR"),
        description="Folder of *.cedar policies, schema.cedarschema and catalogue.yaml.",
    )
