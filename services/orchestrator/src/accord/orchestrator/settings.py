"""Orchestrator settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from accord.runtime.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """Environment of the orchestrator."""

    http_port: int = Field(default=8701, validation_alias=AliasChoices("ACCORD_ORCHESTRATOR_PORT"))
    birthright_targets: str = Field(
        default="scim-demo",
        validation_alias=AliasChoices("ACCORD_BIRTHRIGHT_TARGETS"),
        description="Comma-separated targets every joiner gets an account in.",
    )

    birthright_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ACCORD_BIRTHRIGHT_FILE"),
        description="YAML birthright rules; replaces ACCORD_BIRTHRIGHT_TARGETS when set.",
    )

    def targets(self) -> list[str]:
        """The birthright targets as a list."""
        return [t.strip() for t in self.birthright_targets.split(",") if t.strip()]
