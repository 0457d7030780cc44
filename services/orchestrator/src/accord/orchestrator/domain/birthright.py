"""Birthright rules: which targets an identity gets an account in, from its attributes.

Rules live in a YAML file kept in git. An identity gets the union of the targets of every
rule that matches it; a rule matches when every `when` condition holds and no `unless`
condition does. A condition names an attribute (a profile field such as `department`, or
`attributes.<key>` for further source attributes) and a value or a list of values.

A rule may also carry `if`, a CEL expression over `identity` (see
accord.orchestrator.workflows.expressions), for what maps cannot say: prefixes, negations
of lists, presence. The rule then matches when its when/unless hold AND its `if` holds; an
`if` that fails on a profile (an absent attribute read without has()) does not hold. A bad
expression is refused when the rules load, with the rule's name and the line and column.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from accord.events.catalogue import Profile
from accord.orchestrator.workflows.expressions import (
    Expression,
    ExpressionError,
    compile_condition,
    identity_context,
)

Target = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Value = str | bool
Conditions = dict[str, Value | list[Value]]
RULE_VARIABLES = {"identity": dict}
"""What a rule's `if` sees: the profile only (no `now`, no mover's `previous`)."""


class Rule(BaseModel):
    """One rule."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=128)
    when: Conditions = Field(default_factory=dict)
    unless: Conditions = Field(default_factory=dict)
    if_: str | None = Field(default=None, alias="if", min_length=1, max_length=4096)
    targets: list[Target] = Field(min_length=1)

    @model_validator(mode="after")
    def _if_compiles(self) -> Rule:
        self.condition()
        return self

    def condition(self) -> Expression | None:
        """The compiled `if` (cached by text), or None; ValueError names the rule."""
        if self.if_ is None:
            return None
        try:
            return compile_condition(self.if_, variables=RULE_VARIABLES)
        except ExpressionError as bad:
            raise ValueError(f"rule {self.name!r}: bad `if`: {bad}") from None

    def matches(self, profile: Profile) -> bool:
        """when all hold, no unless holds, and the `if` (if any) holds."""
        if not _all_hold(self.when, profile) or _any_holds(self.unless, profile):
            return False
        condition = self.condition()
        return condition is None or condition.holds(
            {"identity": identity_context(profile)["identity"]}
        )


class Birthright(BaseModel):
    """The whole rule set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[Rule] = Field(default_factory=list)

    def targets_for(self, profile: Profile) -> list[str]:
        """Sorted targets of every matching rule."""
        found: set[str] = set()
        for rule in self.rules:
            if rule.matches(profile):
                found.update(rule.targets)
        return sorted(found)

    def unknown_attributes(self) -> list[str]:
        """Condition attributes that no profile has: almost certainly typos."""
        known = set(Profile.model_fields) - {"attributes"}
        names = {n for rule in self.rules for n in (*rule.when, *rule.unless)}
        return sorted(n for n in names if n not in known and not n.startswith("attributes."))


def everyone(targets: list[str]) -> Birthright:
    """One rule giving every identity the same targets."""
    if not targets:
        return Birthright()
    return Birthright(rules=[Rule(name="everyone", targets=targets)])


def _value(profile: Profile, attribute: str) -> Value | None:
    if attribute.startswith("attributes."):
        return profile.attributes.get(attribute.removeprefix("attributes."))
    value = getattr(profile, attribute, None)
    return value if isinstance(value, str | bool) else None


def _holds(profile: Profile, attribute: str, expected: Value | list[Value]) -> bool:
    actual = _value(profile, attribute)
    choices = expected if isinstance(expected, list) else [expected]
    return actual is not None and actual in choices


def _all_hold(conditions: Conditions, profile: Profile) -> bool:
    return all(_holds(profile, a, v) for a, v in conditions.items())


def _any_holds(conditions: Conditions, profile: Profile) -> bool:
    return any(_holds(profile, a, v) for a, v in conditions.items())
