"""The entitlement catalogue: applications, their entitlements and each one's risk.

An application may also say how it is to be signed in to (`privileged`, `sensitivity`):
the factor policy (authn.cedar) reads them as the Cedar Application's attributes. They
come from here only, never from the caller of POST /v1/authn/evaluate, so a gateway
cannot talk a privileged application down to a weaker factor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from accord.authz.domain.model import Entity, EntityRef
from accord.events.catalogue import Provisioning
from accord.runtime.config_file import load_yaml_model


class CatalogueError(ValueError):
    """The catalogue file is missing or malformed."""


class EntitlementEntry(BaseModel):
    """One entitlement of an application."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk: Literal["low", "high"] | None = None
    group: str | None = Field(default=None, min_length=1, max_length=256)
    """The group in the application's target whose members hold the entitlement."""


class ApplicationEntry(BaseModel):
    """One application."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entitlements: dict[str, EntitlementEntry] = Field(default_factory=dict)
    owners: tuple[str, ...] = ()
    """user_ids of the application's owners (the application_owner approval stage)."""
    escalation: tuple[str, ...] = ()
    """user_ids an overdue approval stage escalates to (other than a manager's)."""
    target: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    """The provisioner target where the entitlements are groups; none: Accord-only."""
    privileged: bool | None = None
    """Whether signing in to it is privileged access (the Cedar attribute `privileged`)."""
    sensitivity: Literal["low", "medium", "high"] | None = None
    """How sensitive its data is (the Cedar attribute `sensitivity`)."""

    def attrs(self) -> dict[str, bool | str]:
        """The Cedar attributes of the application: those the catalogue sets."""
        attrs: dict[str, bool | str] = {}
        if self.privileged is not None:
            attrs["privileged"] = self.privileged
        if self.sensitivity is not None:
            attrs["sensitivity"] = self.sensitivity
        return attrs


class Catalogue(BaseModel):
    """The whole catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    applications: dict[str, ApplicationEntry] = Field(default_factory=dict)

    def resource_entities(self, application: str, entitlement: str) -> list[Entity]:
        """The Cedar entities for an entitlement and its application (unknown ones get no risk)."""
        app = self.application_entity(application)
        app_ref = app.ref
        entry = self.applications.get(application, ApplicationEntry()).entitlements.get(entitlement)
        attrs = {"risk": entry.risk} if entry and entry.risk else {}
        return [
            app,
            Entity(
                EntityRef("Entitlement", entitlement_id(application, entitlement)),
                attrs,
                (app_ref,),
            ),
        ]

    def entities_of(self, resource: EntityRef) -> list[Entity]:
        """What the catalogue says of a resource: an Entitlement (`application/entitlement`)
        with its application, or an Application; nothing for any other resource."""
        if resource.type == "Entitlement" and "/" in resource.id:
            application, entitlement = resource.id.split("/", 1)
            return self.resource_entities(application, entitlement)
        if resource.type == "Application":
            return [self.application_entity(resource.id)]
        return []

    def application_entity(self, application: str) -> Entity:
        """The Cedar entity of an application, with its attributes (none for an unknown one)."""
        return Entity(
            EntityRef("Application", application), dict(self.application(application).attrs())
        )

    def provisioning(self, application: str, entitlement: str) -> tuple[Provisioning, ...]:
        """Where an entitlement is provisioned: its group in the application's target."""
        app = self.applications.get(application)
        entry = app.entitlements.get(entitlement) if app else None
        if app is None or entry is None or app.target is None or entry.group is None:
            return ()
        return (Provisioning(target=app.target, group=entry.group),)

    def application(self, application: str) -> ApplicationEntry:
        """An application's entry (an empty one for an unknown application)."""
        return self.applications.get(application, ApplicationEntry())


def entitlement_id(application: str, entitlement: str) -> str:
    """The Cedar id of an entitlement, unique across applications."""
    return f"{application}/{entitlement}"


def load_catalogue(path: Path) -> Catalogue:
    """Parse and validate a catalogue file."""
    return load_yaml_model(path, Catalogue, CatalogueError)
