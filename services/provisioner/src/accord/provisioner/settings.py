"""Provisioner settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from accord.runtime.settings import ServiceSettings


class ProvisionerSettings(ServiceSettings):
    """Environment of the provisioner."""

    http_port: int = Field(default=8702, validation_alias=AliasChoices("ACCORD_PROVISIONER_PORT"))
    targets_file: Path = Field(
        default=Path("targets.yaml"),
        validation_alias=AliasChoices("ACCORD_TARGETS_FILE"),
        description="YAML file declaring the target systems.",
    )
