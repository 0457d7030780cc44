"""Orchestrator settings."""

from __future__ import annotations

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

    def targets(self) -> list[str]:
        """The birthright targets as a list."""
        return [t.strip() for t in self.birthright_targets.split(",") if t.strip()]
