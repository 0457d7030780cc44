"""Sources service settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from accord.runtime.settings import ServiceSettings

#: The service's name: its database schema, its Kafka group (accord-sources), its logs.
SERVICE = "sources"


class SourcesSettings(ServiceSettings):
    """Environment of the sources service."""

    http_port: int = Field(default=8706, validation_alias="ACCORD_SOURCES_PORT")
    sources_file: Path | None = Field(
        default=None,
        validation_alias="ACCORD_SOURCES_FILE",
        description="sources.yaml: the authoritative sources, their schedules and watches."
        " Unset: no sources run (the service still keeps its view of the identities).",
    )
    watch_poll_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        validation_alias="ACCORD_SOURCES_WATCH_POLL_S",
        description="How often watched exports are looked at; a file runs once it has not"
        " changed for one poll (an export still being written is not read half-way).",
    )
