"""Provisioner settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from accord.runtime.settings import ServiceSettings


class ProvisionerSettings(ServiceSettings):
    """Environment of the provisioner."""

    http_port: int = Field(default=8702, validation_alias="ACCORD_PROVISIONER_PORT")
    targets_file: Path = Field(
        default=Path("targets.yaml"),
        description="YAML file declaring the target systems.",
    )
