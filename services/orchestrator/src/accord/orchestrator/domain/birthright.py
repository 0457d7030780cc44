"""Birthright rules: which targets an identity gets an account in, from its attributes.

Rules live in a YAML file kept in git. An identity gets the union of the targets of every
rule that matches it; a rule matches when every `when` condition holds and no `unless`
condition does. A condition names an attribute (a profile field such as `department`, or
`attributes.<key>` for further source attributes) and a value or a list of values.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from accord.events.catalogue import Profile

Target = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Value = str | bool
Conditions = dict[str, Value | list[Value]]


class Rule(BaseModel):
    """One rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    when: Conditions = Field(default_factory=dict)
    unless: Conditions = Field(default_factory=dict)
    targets: list[Target] = Field(min_length=1)


class Birthright(BaseModel):
    """The whole rule set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[Rule] = Field(default_factory=list)

    def targets_for(self, profile: Profile) -> list[str]:
        """Sorted targets of every matching rule."""
        found: set[str] = set()
        for rule in self.rules:
            if _all_hold(rule.when, profile) and not _any_holds(rule.unless, profile):
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
