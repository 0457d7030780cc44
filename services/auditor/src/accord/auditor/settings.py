"""Auditor settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from accord.runtime.settings import ServiceSettings


class AuditorSettings(ServiceSettings):
    """Environment of the auditor."""

    http_port: int = Field(default=8704, validation_alias=AliasChoices("ACCORD_AUDITOR_PORT"))
    redact_fields: str = Field(
        default="",
        validation_alias=AliasChoices("ACCORD_AUDIT_REDACT_FIELDS"),
        description="Comma-separated payload keys stored as [redacted] (PII policy).",
    )

    def redactions(self) -> list[str]:
        """The redacted keys as a list."""
        return [f.strip() for f in self.redact_fields.split(",") if f.strip()]
