"""`accord policy`: validate a policy folder and test it against YAML cases, as CI does for code.

``accord policy validate [DIR]`` loads the folder as the service would (``*.cedar``,
the schema and ``catalogue.yaml``) and prints ``ok: N policies (version ...)``, or
the first problem as ``path:line: reason`` and exits 1.

``accord policy test CASES.yaml [MORE.yaml ...] [--policies DIR]`` decides each
case with the folder's policies and prints ``PASS``/``FAIL`` per case and a
summary; it exits 1 if a case fails and 2 if a case file is malformed. DIR
defaults to ``$ACCORD_POLICY_DIR``, else the policies shipped with authz.

The case file format is ``CASES_FORMAT`` below (also shown by ``--help``).

An entitlement resource (``{application, entitlement}``) gets its Cedar entities
(the application, and the entitlement with its risk) from the folder's
``catalogue.yaml``, as the service does, and so does an application resource
(``{type: Application, id: payroll}``: its ``privileged`` and ``sensitivity``, as
the factor policy sees them); an entity listed under ``entities`` with the same
type and id replaces the catalogue's. ``reasons``, when given,
must equal the ``@id``s of the deciding policies (in any order); a request no
policy permits is denied with the reason ``no policy permits``. Attribute values
are Cedar JSON values (an entity reference is ``{type: Entitlement, id: wiki/reader}``
where the schema expects one). Case names must be unique within a file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from accord.authz.catalogue import Catalogue, entitlement_id
from accord.authz.domain.model import AccessQuery, Decision, Entity, EntityRef
from accord.authz.domain.policy_files import default_policy_dir
from accord.authz.domain.policy_set import EntityError, decide, load_entities
from accord.authz.policy_holder import LoadError, PolicySnapshot, load_snapshot
from accord.events.cli import EXIT_FAILURE, EXIT_USAGE, CliError
from accord.runtime.cli_scaffold import add_action, add_actions
from accord.runtime.config_file import load_yaml_model

_TYPE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$"

CASES_FORMAT = """\
case file format (YAML):
  entities:            # optional, shared by all cases: users with attrs and groups
    - {type: User, id: alice, attrs: {active: true, department: Sales},
       parents: [{type: Group, id: sales}]}
  cases:
    - name: active users get low-risk wiki access
      principal: {type: User, id: alice}
      action: request
      resource: {application: wiki, entitlement: reader}   # or {type: X, id: y}
      context: {justification: "on call"}                 # optional
      expect: permit                                       # or deny
      reasons: [low-risk-self-service]                     # optional
    - name: privileged applications need webauthn
      principal: {type: User, id: alice}
      action: require_phishing_resistant
      resource: {type: Application, id: payroll}
      context: {network: corporate, risk: low, presented: [pwd]}
      expect: permit

An entitlement resource gets its entities (application, entitlement and risk) from
the folder's catalogue.yaml, an Application resource its attributes. `reasons` must
equal the deciding policies' @ids (any order); a request no policy permits has the
reason "no policy permits".
Exit codes: 0 all passed, 1 a case failed or the policies are invalid,
2 a case file is malformed."""


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


# --- the command ------------------------------------------------------------------------


def _policy_dir(argument: Path | None) -> Path:
    if argument is not None:
        return argument
    configured = os.environ.get("ACCORD_POLICY_DIR")
    return Path(configured) if configured else default_policy_dir()


def _load(folder: Path) -> PolicySnapshot:
    try:
        return load_snapshot(folder)
    except NotADirectoryError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    except LoadError as error:
        raise CliError(str(error), EXIT_FAILURE) from None


def _validate(args: argparse.Namespace) -> int:
    snapshot = _load(_policy_dir(args.folder))
    count = len(snapshot.policies.policy_ids)
    print(f"ok: {count} {'policy' if count == 1 else 'policies'} (version {snapshot.version})")
    return 0


def _test(args: argparse.Namespace) -> int:
    snapshot = _load(_policy_dir(args.policies))
    try:
        results = run_case_files(args.cases, snapshot)
    except CaseFileError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    several = len(args.cases) > 1
    for path, outcome in results:
        print(f"{path}: {outcome.line()}" if several else outcome.line())
    failed = sum(1 for _, outcome in results if not outcome.passed)
    print(f"{len(results) - failed} passed, {failed} failed")
    return EXIT_FAILURE if failed else 0


def register_policy(commands: Any) -> None:
    """Add `accord policy` to the accord command."""
    actions = add_actions(
        commands,
        "policy",
        help="validate Cedar policies and test them against YAML cases",
        description="Check authz's policy folder (*.cedar, schema.cedarschema, "
        "catalogue.yaml) as the service loads it. DIR defaults to $ACCORD_POLICY_DIR, "
        "else the policies shipped with authz.",
    )
    validate = add_action(
        actions,
        "validate",
        _validate,
        help="load the policy folder; print its version or the first problem",
        description="Prints 'ok: N policies (version SHA256)', or 'path:line: reason' and exits 1.",
    )
    validate.add_argument("folder", nargs="?", type=Path, metavar="DIR", help="policy folder")
    test = add_action(
        actions,
        "test",
        _test,
        help="decide YAML test cases with the policies; fail on any unexpected decision",
        description="Decide each case with the folder's policies and catalogue and "
        "compare with its expected decision (and deciding policies).",
        epilog=CASES_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("cases", nargs="+", type=Path, metavar="CASES.yaml", help="case files")
    test.add_argument("--policies", type=Path, metavar="DIR", help="policy folder")
