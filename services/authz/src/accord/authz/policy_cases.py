"""`accord policy test`'s case files: their format (pydantic models), and deciding each case
with a policy folder's snapshot as the service would. accord.authz.policy_cli imports this
module when `accord policy test` runs; `policy_cli.CASES_FORMAT` documents the format."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from accord.authz.catalogue import Catalogue, entitlement_id
from accord.authz.domain.model import AccessQuery, Decision, Entity, EntityRef
from accord.authz.domain.policy_set import EntityError, decide, load_entities
from accord.authz.policy_holder import PolicySnapshot
from accord.runtime.config_file import load_yaml_model

_TYPE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$"


class CaseFileError(ValueError):
    """A case file that cannot be read or does not follow the format."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RefSpec(_Spec):
    """An entity uid: ``{type: User, id: alice}``."""

    type: str = Field(pattern=_TYPE_NAME)
    id: str

    def ref(self) -> EntityRef:
        """The domain's entity reference."""
        return EntityRef(self.type, self.id)


class EntitlementSpec(_Spec):
    """An entitlement of the catalogue: ``{application: wiki, entitlement: reader}``."""

    application: str = Field(min_length=1)
    entitlement: str = Field(min_length=1)


class EntitySpec(RefSpec):
    """An entity with its attributes and the groups (parents) it is in."""

    attrs: dict[str, Any] = Field(default_factory=dict)
    parents: list[RefSpec] = Field(default_factory=list)

    def entity(self) -> Entity:
        """The domain's entity."""
        return Entity(self.ref(), dict(self.attrs), tuple(p.ref() for p in self.parents))


def _resource_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "entitlement" if {"application", "entitlement"} & value.keys() else "entity"
    return "entitlement" if isinstance(value, EntitlementSpec) else "entity"


ResourceSpec = Annotated[
    Annotated[RefSpec, Tag("entity")] | Annotated[EntitlementSpec, Tag("entitlement")],
    Discriminator(_resource_kind),
]


class Case(_Spec):
    """One access question and the answer the policies must give."""

    name: str = Field(min_length=1)
    principal: RefSpec
    action: str = Field(min_length=1)
    resource: ResourceSpec
    context: dict[str, Any] = Field(default_factory=dict)
    expect: Literal["permit", "deny"]
    reasons: list[str] | None = None


class CaseFile(_Spec):
    """A file of cases and the entities they share."""

    entities: list[EntitySpec] = Field(default_factory=list)
    cases: list[Case] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> CaseFile:
        names = [case.name for case in self.cases]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"case names must be unique; repeated: {', '.join(repeated)}")
        return self


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case's result: the decision the policies gave, and whether it was expected."""

    case: Case
    decision: Decision

    @property
    def passed(self) -> bool:
        """The effect is the expected one, and so are the reasons if any were given."""
        if self.decision.effect != self.case.expect:
            return False
        expected = self.case.reasons
        return expected is None or sorted(expected) == sorted(self.decision.reasons)

    def line(self) -> str:
        """``PASS name``, or ``FAIL name: expected ..., got ...``."""
        if self.passed:
            return f"PASS  {self.case.name}"
        wanted: str = self.case.expect
        if self.case.reasons is not None:
            wanted += f" {_listed(self.case.reasons)}"
        got = f"{self.decision.effect} {_listed(self.decision.reasons)}"
        errors = f" (errors: {'; '.join(self.decision.errors)})" if self.decision.errors else ""
        return f"FAIL  {self.case.name}: expected {wanted}, got {got}{errors}"


def _listed(reasons: Sequence[str]) -> str:
    return "[" + ", ".join(sorted(reasons)) + "]"


# --- running cases ----------------------------------------------------------------------


def _resource(case: Case, catalogue: Catalogue) -> tuple[EntityRef, list[Entity]]:
    resource = case.resource
    if isinstance(resource, EntitlementSpec):
        ref = EntityRef("Entitlement", entitlement_id(resource.application, resource.entitlement))
        return ref, catalogue.resource_entities(resource.application, resource.entitlement)
    if resource.type == "Application":
        return resource.ref(), [catalogue.application_entity(resource.id)]
    return resource.ref(), []


def run_case(snapshot: PolicySnapshot, case: Case, entities: Sequence[Entity]) -> Outcome:
    """Decide ``case``; listed ``entities`` replace the catalogue's of the same uid."""
    resource, from_catalogue = _resource(case, snapshot.catalogue)
    listed = {entity.ref for entity in entities}
    everything = [*entities, *(e for e in from_catalogue if e.ref not in listed)]
    query = AccessQuery(case.principal.ref(), case.action, resource, dict(case.context))
    return Outcome(case, decide(snapshot.policies, query, everything))


def load_case_file(path: Path, snapshot: PolicySnapshot) -> tuple[CaseFile, list[Entity]]:
    """Parse a case file and check its entities against the policies' schema.

    :raises CaseFileError: naming the file and the problem.
    """
    cases = load_yaml_model(path, CaseFile, CaseFileError)
    entities = [spec.entity() for spec in cases.entities]
    refs = [entity.ref for entity in entities]
    repeated = sorted({str(ref) for ref in refs if refs.count(ref) > 1})
    if repeated:
        raise CaseFileError(f"{path}: entities: listed more than once: {', '.join(repeated)}")
    try:
        load_entities(snapshot.policies, entities)
    except EntityError as error:
        raise CaseFileError(
            f"{path}: entities: {_entity_problem(snapshot, entities, error)}"
        ) from None
    return cases, entities


def _entity_problem(snapshot: PolicySnapshot, entities: Sequence[Entity], error: Exception) -> str:
    """Name the first entity Cedar rejects on its own (its message does not say which)."""
    for entity in entities:
        try:
            load_entities(snapshot.policies, [entity])
        except EntityError as own:
            return f"{entity.ref}: {own}"
    return str(error)


def run_case_files(paths: Sequence[Path], snapshot: PolicySnapshot) -> list[tuple[Path, Outcome]]:
    """Check every file first (malformed ones raise), then decide all their cases."""
    loaded = [(path, *load_case_file(path, snapshot)) for path in paths]
    return [
        (path, run_case(snapshot, case, entities))
        for path, cases, entities in loaded
        for case in cases.cases
    ]
