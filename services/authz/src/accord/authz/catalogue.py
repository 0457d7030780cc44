"""The entitlement catalogue: applications, their entitlements and each one's risk."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from accord.authz.domain.model import Entity, EntityRef
from accord.runtime.config_file import load_yaml_model


class CatalogueError(ValueError):
    """The catalogue file is missing or malformed."""


class EntitlementEntry(BaseModel):
    """One entitlement of an application."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk: Literal["low", "high"] | None = None


class ApplicationEntry(BaseModel):
    """One application."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entitlements: dict[str, EntitlementEntry] = Field(default_factory=dict)


class Catalogue(BaseModel):
    """The whole catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    applications: dict[str, ApplicationEntry] = Field(default_factory=dict)

    def resource_entities(self, application: str, entitlement: str) -> list[Entity]:
        """The Cedar entities for an entitlement and its application (unknown ones get no risk)."""
        app_ref = EntityRef("Application", application)
        entry = self.applications.get(application, ApplicationEntry()).entitlements.get(entitlement)
        attrs = {"risk": entry.risk} if entry and entry.risk else {}
        return [
            Entity(app_ref),
            Entity(
                EntityRef("Entitlement", entitlement_id(application, entitlement)),
                attrs,
                (app_ref,),
            ),
        ]


def entitlement_id(application: str, entitlement: str) -> str:
    """The Cedar id of an entitlement, unique across applications."""
    return f"{application}/{entitlement}"


def load_catalogue(path: Path) -> Catalogue:
    """Parse and validate a catalogue file."""
    return load_yaml_model(path, Catalogue, CatalogueError)
