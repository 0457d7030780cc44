"""Compile Cedar policies once, then decide access queries against them.

``compile_policies`` is pure: it takes policy texts (with the path they came
from, for error messages) and an optional Cedar schema, checks them, and
returns :class:`LoadedPolicies` holding the parsed engine handles. ``decide`` and
``decide_batch`` reuse those handles, so policy text and schema are parsed once
per load, not once per decision.

Cedar names policies by position (``policy0``, ``policy1``, ...). Every policy
here must carry a unique ``@id("...")`` annotation; decisions report those ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cedarpy

from accord.authz.domain.approvals import (
    APPROVAL_ANNOTATION,
    SOD_ANNOTATION,
    ChainError,
    parse_chain,
)
from accord.authz.domain.error_lines import (
    annotation_line,
    syntax_error_line,
    validation_error_line,
)
from accord.authz.domain.model import (
    NO_POLICY_PERMITS,
    AccessQuery,
    Decision,
    Entity,
    to_cedar_json,
)

__all__ = [
    "EntityError",
    "EntityGraph",
    "LoadedPolicies",
    "PolicyError",
    "PolicySource",
    "compile_policies",
    "decide",
    "decide_batch",
    "load_entities",
]


@dataclass(frozen=True, slots=True)
class PolicySource:
    """The text of one ``.cedar`` file and the path it is reported under."""

    path: str
    text: str


class PolicyError(ValueError):
    """A policy set that cannot be loaded. ``str()`` is ``path:line: reason``.

    ``line`` is the 1-based line of the error in ``path``: the offending token, name or
    annotation (see :mod:`accord.authz.domain.error_lines`), or where the policy starts
    when nothing more precise is known (a missing ``@id``, a type error); ``None`` when the
    problem is not tied to one policy (an invalid schema).
    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = "; ".join(part.strip() for part in reason.splitlines() if part.strip())
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.reason}"

    def __reduce__(self) -> tuple[type[PolicyError], tuple[str, int | None, str]]:
        return (PolicyError, (self.path, self.line, self.reason))


class EntityError(ValueError):
    """Entities that Cedar cannot load (bad shape, or not matching the schema)."""


@dataclass(frozen=True, slots=True)
class LoadedPolicies:
    """A checked, parsed policy set, ready for many decisions.

    ``text`` is the concatenated policy text, ``ids`` maps Cedar's positional
    policy ids (``policy0``...) in that text to the policies' ``@id``,
    ``locations`` maps each ``@id`` to ``path:line`` and ``schema`` is the schema
    text the policies were validated against, if any. ``engine_policies`` and
    ``engine_schema`` are the parsed cedarpy handles.
    """

    text: str = field(repr=False)
    ids: Mapping[str, str]
    locations: Mapping[str, str]
    schema: str | None = field(repr=False)
    engine_policies: cedarpy.PolicySet = field(repr=False, compare=False)
    engine_schema: cedarpy.Schema | None = field(repr=False, compare=False)
    annotations: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Each policy's annotations by @id (e.g. its @approval chain)."""
    without_routed: LoadedPolicies | None = field(default=None, repr=False, compare=False)
    """The same set without its routed separation-of-duties policies (`@sod` forbid
    policies with an `@approval`): what a toxic request would get if it were approved."""

    @property
    def routed(self) -> frozenset[str]:
        """@ids of the separation-of-duties policies that route to approval."""
        return frozenset(
            pid
            for pid, notes in self.annotations.items()
            if SOD_ANNOTATION in notes and APPROVAL_ANNOTATION in notes
        )

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """The ``@id`` of every policy, in load order."""
        return tuple(self.locations)


@dataclass(frozen=True, slots=True)
class EntityGraph:
    """Entities parsed once by Cedar (and checked against the schema, if any).

    Pass it to ``decide``/``decide_batch`` instead of a list of entities to avoid
    re-parsing a large, stable graph (users, groups) on every decision.
    """

    engine_entities: cedarpy.Entities = field(repr=False, compare=False)
    engine_schema: cedarpy.Schema | None = field(repr=False, compare=False)

    def __len__(self) -> int:
        """The number of entities, including action entities added by the schema."""
        return len(self.engine_entities)

    def with_added(self, entities: Iterable[Entity]) -> EntityGraph:
        """A new graph: this one plus ``entities`` (only the additions are parsed)."""
        delta = to_cedar_json([entity.to_cedar() for entity in entities])
        try:
            added = self.engine_entities.with_added_json_str(delta, self.engine_schema)
        except ValueError as exc:
            raise EntityError(f"cannot add entities: {exc}") from exc
        return EntityGraph(added, self.engine_schema)


# --- loading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Statement:
    line: int
    """Where the policy starts (its first significant character)."""
    text: str
    text_line: int = 1
    """Where `text` starts (after the previous policy's `;`)."""


def _split_statements(text: str) -> list[_Statement]:
    """Split Cedar policy text at each top-level ``;``.

    Cedar's only comments are ``//`` line comments and its only literals that may
    contain ``;`` are double-quoted strings, so this small scanner is enough to
    find where each policy starts. Trailing text without a ``;`` is returned as a
    last statement (so a missing ``;`` is reported at the right policy).
    """
    statements: list[_Statement] = []
    line = 1
    start = 0
    text_line = 1
    start_line: int | None = None  # line of the first significant character
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch.isspace():
            pass
        else:
            if start_line is None:
                start_line = line
            if ch == '"':
                i += 1
                while i < n and text[i] != '"':
                    if text[i] == "\\":
                        i += 1
                    elif text[i] == "\n":
                        line += 1
                    i += 1
            elif ch == ";":
                statements.append(_Statement(start_line, text[start : i + 1], text_line))
                start, start_line, text_line = i + 1, None, line
        i += 1
    if start_line is not None:
        statements.append(_Statement(start_line, text[start:], text_line))
    return statements


def _parse_error(source: PolicySource, exc: ValueError) -> PolicyError:
    """Locate a parse error: the first policy in the file that fails on its own, and the
    line in it where the error is."""
    statements = _split_statements(source.text)
    for statement in statements:
        try:
            cedarpy.PolicySet.from_str(statement.text)
        except ValueError as statement_exc:
            line = syntax_error_line(statement.text, statement.text_line)
            return PolicyError(source.path, line, f"syntax error: {statement_exc}")
    first_line = statements[0].line if statements else 1
    return PolicyError(source.path, first_line, f"syntax error: {exc}")


_POSITIONAL_ID = re.compile(r"`(policy\d+)`")


def _positional_index(positional_id: str) -> int:
    """``policy7`` -> 7; -1 for an id Cedar did not assign by position."""
    digits = positional_id.removeprefix("policy")
    return int(digits) if positional_id.startswith("policy") and digits.isdigit() else -1


def _rename_ids(message: str, ids: Mapping[str, str]) -> str:
    """Replace Cedar's backquoted positional ids in ``message`` by ``@id``s."""
    return _POSITIONAL_ID.sub(lambda m: f"`{ids.get(m.group(1), m.group(1))}`", message)


def _parse_schema(schema: str, schema_path: str) -> cedarpy.Schema:
    try:
        if schema.lstrip().startswith("{"):
            return cedarpy.Schema.from_json_str(schema)
        return cedarpy.Schema.from_str(schema)
    except ValueError as exc:
        raise PolicyError(schema_path, None, f"invalid schema: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Statements:
    """One file's statements, found by Cedar's positional id (policy0, policy1, ...)."""

    statements: Sequence[_Statement]

    def of(self, positional_id: str) -> _Statement | None:
        index = _positional_index(positional_id)
        return self.statements[index] if 0 <= index < len(self.statements) else None

    def line_of(self, positional_id: str) -> int | None:
        statement = self.of(positional_id)
        return statement.line if statement else None

    def annotated(self, positional_id: str, annotation: str) -> int | None:
        statement = self.of(positional_id)
        if statement is None:
            return None
        return annotation_line(statement.text, statement.text_line, annotation)


def _check_source(
    source: PolicySource,
    engine_schema: cedarpy.Schema | None,
    seen: dict[str, str],
) -> None:
    """Parse, check ``@id``s of and validate one file; record its ids in ``seen``."""
    try:
        est = json.loads(cedarpy.policies_to_json_str(source.text))
    except ValueError as exc:
        raise _parse_error(source, exc) from exc

    # Cedar numbers policies policy0, policy1, ... in text order (templates included).
    statements = _split_statements(source.text)
    if len(statements) != len(est["templates"]) + len(est["staticPolicies"]):
        statements = []  # pragma: no cover - scanner disagrees with Cedar: give no line
    located = _Statements(statements)

    if est["templates"]:
        first_template = min(est["templates"], key=_positional_index)
        raise PolicyError(
            source.path,
            located.line_of(first_template),
            "policy templates (?principal/?resource slots) are not supported",
        )

    ids: dict[str, str] = {}
    policies = sorted(est["staticPolicies"].items(), key=lambda kv: _positional_index(kv[0]))
    for positional_id, policy in policies:
        ids[positional_id] = _check_policy(source, located, positional_id, policy, seen)

    if engine_schema is not None:
        _validate(source, located, engine_schema, ids)


def _check_policy(
    source: PolicySource,
    located: _Statements,
    positional_id: str,
    policy: dict[str, Any],
    seen: dict[str, str],
) -> str:
    """Check one policy's ``@id`` and ``@approval``; record its id in ``seen``, return it."""
    line = located.line_of(positional_id)
    annotations = policy.get("annotations", {})
    policy_id = annotations.get("id")
    if not policy_id:
        raise PolicyError(source.path, line, 'policy has no @id("...") annotation')
    chain = annotations.get(APPROVAL_ANNOTATION)
    if chain is not None:
        routes_sod = SOD_ANNOTATION in annotations
        if policy.get("effect") != "permit" and not routes_sod:
            raise PolicyError(
                source.path,
                located.annotated(positional_id, APPROVAL_ANNOTATION),
                "@approval belongs on permit policies (or on @sod forbid policies, to route"
                " a toxic request to approval)",
            )
        try:
            parse_chain(chain)
        except ChainError as error:
            raise PolicyError(
                source.path, located.annotated(positional_id, APPROVAL_ANNOTATION), str(error)
            ) from None
    if policy_id in seen:
        raise PolicyError(
            source.path,
            located.annotated(positional_id, "id"),
            f'duplicate @id("{policy_id}"), first used at {seen[policy_id]}',
        )
    seen[policy_id] = source.path if line is None else f"{source.path}:{line}"
    return str(policy_id)


def _validate(
    source: PolicySource,
    located: _Statements,
    engine_schema: cedarpy.Schema,
    ids: Mapping[str, str],
) -> None:
    """Validate one file against the schema; raise on its first error (by line)."""
    result = cedarpy.validate_policies(source.text, engine_schema)
    if result.validation_passed:
        return
    errors = sorted(result.errors, key=lambda e: located.line_of(e.policy_id) or 0)
    first = errors[0] if errors else None
    statement = located.of(first.policy_id) if first else None
    line = (
        validation_error_line(statement.text, statement.text_line, first.error)
        if first and statement
        else None
    )
    reason = _rename_ids(first.error, ids) if first else "validation failed"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise PolicyError(source.path, line, f"schema validation failed: {reason}{more}")


def compile_policies(
    sources: Sequence[PolicySource],
    schema: str | None,
    *,
    schema_path: str = "<schema>",
) -> LoadedPolicies:
    """Check and parse ``sources`` (in order) into a reusable policy set.

    Each file is parsed on its own so errors name the file and the line where
    the offending policy starts. Every policy needs an ``@id("...")``, unique
    across all files; templates are rejected. With a ``schema`` (Cedar schema
    syntax, or its JSON form), policies are validated against it and it is used
    to check requests and entities at decision time. ``schema_path`` is only
    used to report schema errors.

    :raises PolicyError: on the first problem found.
    """
    engine_schema = None if schema is None else _parse_schema(schema, schema_path)

    locations: dict[str, str] = {}
    for source in sources:
        _check_source(source, engine_schema, locations)

    # Each file followed by a newline, so a final comment cannot swallow the next file.
    text = "".join(source.text + "\n" for source in sources)
    engine_policies = cedarpy.PolicySet.from_str(text)
    est = json.loads(cedarpy.policies_to_json_str(text))
    ids = {pid: policy["annotations"]["id"] for pid, policy in est["staticPolicies"].items()}
    annotations = {
        policy["annotations"]["id"]: MappingProxyType(dict(policy["annotations"]))
        for policy in est["staticPolicies"].values()
    }
    if sorted(ids.values()) != sorted(locations):  # pragma: no cover - engine invariant
        raise PolicyError("<policies>", None, "policy ids changed when the files were combined")
    routed = {
        pid
        for pid, notes in annotations.items()
        if SOD_ANNOTATION in notes and APPROVAL_ANNOTATION in notes
    }
    without_routed = (
        compile_policies(
            [_without(source, routed) for source in sources], schema, schema_path=schema_path
        )
        if routed
        else None
    )

    return LoadedPolicies(
        text=text,
        ids=MappingProxyType(ids),
        locations=MappingProxyType(locations),
        schema=schema,
        engine_policies=engine_policies,
        engine_schema=engine_schema,
        annotations=MappingProxyType(annotations),
        without_routed=without_routed,
    )


def _without(source: PolicySource, policy_ids: set[str]) -> PolicySource:
    """The source with the policies of these @ids left out (their lines blanked, so the
    other policies keep their line numbers)."""
    kept: list[str] = []
    for statement in _split_statements(source.text):
        est = json.loads(cedarpy.policies_to_json_str(statement.text))
        policy_ids_here = {p["annotations"].get("id") for p in est["staticPolicies"].values()}
        kept.append(
            "\n" * statement.text.count("\n") if policy_ids_here & policy_ids else statement.text
        )
    return PolicySource(source.path, "".join(kept))


# --- deciding --------------------------------------------------------------------------


def load_entities(policies: LoadedPolicies, entities: Iterable[Entity]) -> EntityGraph:
    """Parse ``entities`` once (checked against the policies' schema, if any).

    :raises EntityError: if Cedar rejects them (e.g. an attribute of the wrong type).
    """
    data = to_cedar_json([entity.to_cedar() for entity in entities])
    try:
        parsed = cedarpy.Entities.from_json_str(data, policies.engine_schema)
    except ValueError as exc:
        raise EntityError(f"cannot load entities: {exc}") from exc
    return EntityGraph(parsed, policies.engine_schema)


def _engine_entities(
    entities: Sequence[Entity] | EntityGraph,
) -> tuple[cedarpy.Entities | str, str | None]:
    if isinstance(entities, EntityGraph):
        return entities.engine_entities, None
    data = to_cedar_json([entity.to_cedar() for entity in entities])
    return data, data


def _request(query: AccessQuery) -> dict[str, object]:
    return {
        "principal": query.principal.to_cedar(),
        "action": query.action_ref.to_cedar(),
        "resource": query.resource.to_cedar(),
        "context": to_cedar_json(query.context),
    }


def _decision(
    policies: LoadedPolicies, result: cedarpy.AuthzResult, entities_json: str | None
) -> Decision:
    diagnostics = result.diagnostics
    errors = tuple(_rename_ids(error, policies.ids) for error in diagnostics.errors)
    if entities_json is not None:
        # Cedar quotes the whole entities document in entity errors; keep the reason only.
        errors = tuple(e.replace(f" from:\n{entities_json}:", ":") for e in errors)
    reasons = tuple(sorted(policies.ids.get(r, r) for r in diagnostics.reasons))
    if result.decision == cedarpy.Decision.Allow:
        return Decision("permit", reasons, errors)
    return Decision("deny", reasons or (NO_POLICY_PERMITS,), errors)


def decide(
    policies: LoadedPolicies,
    query: AccessQuery,
    entities: Sequence[Entity] | EntityGraph,
) -> Decision:
    """Decide one query. Deny unless a ``permit`` applies and no ``forbid`` does.

    ``entities`` is the entity data the policies may consult (principal, its
    groups, the resource, its application...): a list, parsed on each call, or
    an :class:`EntityGraph` parsed once with :func:`load_entities`.
    """
    engine_entities, entities_json = _engine_entities(entities)
    result = cedarpy.is_authorized(
        _request(query), policies.engine_policies, engine_entities, policies.engine_schema
    )
    return _decision(policies, result, entities_json)


def decide_batch(
    policies: LoadedPolicies,
    queries: Sequence[AccessQuery],
    entities: Sequence[Entity] | EntityGraph,
) -> list[Decision]:
    """Decide many queries against the same entities; results in query order."""
    if not queries:
        return []
    engine_entities, entities_json = _engine_entities(entities)
    results = cedarpy.is_authorized_batch(
        [_request(query) for query in queries],
        policies.engine_policies,
        engine_entities,
        policies.engine_schema,
    )
    return [_decision(policies, result, entities_json) for result in results]
