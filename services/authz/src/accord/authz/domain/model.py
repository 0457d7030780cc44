"""Value objects of the policy-decision domain.

Plain frozen dataclasses: no I/O and no Cedar engine here, only the shapes an
access question and its answer take, plus their rendering to Cedar's JSON forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

NO_POLICY_PERMITS = "no policy permits"
"""The reason given when a request is denied because no policy permits it.

Cedar is deny-by-default: a request is permitted only when at least one
``permit`` policy is satisfied and no ``forbid`` policy is.
"""

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TYPE_PATH = re.compile(rf"{_NAME}(?:::{_NAME})*")


def _cedar_string(value: str) -> str:
    """Quote ``value`` as a Cedar string literal."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A Cedar entity uid: an entity type (``User``, ``Ns::User``) and an id."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if not _TYPE_PATH.fullmatch(self.type):
            raise ValueError(f"not a Cedar entity type name: {self.type!r}")

    def __str__(self) -> str:
        """The Cedar surface form, e.g. ``User::"alice"``."""
        return f"{self.type}::{_cedar_string(self.id)}"

    def to_cedar(self) -> dict[str, str]:
        """The Cedar JSON form of the uid: ``{"type": ..., "id": ...}``."""
        return {"type": self.type, "id": self.id}


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity the policies may look at: its attributes and its parents.

    ``attrs`` values are Cedar values: ``str``, ``int``, ``bool``, lists/tuples/sets
    (Cedar sets), dicts with string keys (records) and :class:`EntityRef`
    (entity references). ``parents`` are the groups (or containers) the entity is
    directly ``in``; Cedar computes the transitive closure.
    """

    ref: EntityRef
    attrs: dict[str, Any] = field(default_factory=dict, hash=False)
    parents: tuple[EntityRef, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.parents, tuple):
            object.__setattr__(self, "parents", tuple(self.parents))

    def to_cedar(self) -> dict[str, Any]:
        """The Cedar JSON entity form (``EntityRef`` values still to be encoded)."""
        return {
            "uid": self.ref.to_cedar(),
            "attrs": self.attrs,
            "parents": [parent.to_cedar() for parent in self.parents],
        }


@dataclass(frozen=True, slots=True)
class AccessQuery:
    """May ``principal`` perform ``action`` on ``resource``, given ``context``?

    ``action`` is the id of an ``Action`` entity (``"request"`` is
    ``Action::"request"``).
    """

    principal: EntityRef
    action: str
    resource: EntityRef
    context: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def action_ref(self) -> EntityRef:
        return EntityRef("Action", self.action)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to an :class:`AccessQuery`.

    ``reasons`` are the ``@id`` annotations of the policies that determined the
    effect (the satisfied ``permit`` policies, or the satisfied ``forbid``
    policies), or ``("no policy permits",)`` when the request was denied by
    default. ``errors`` are evaluation errors; a policy that errors is skipped,
    and a request the engine could not evaluate at all is denied.
    """

    effect: Literal["permit", "deny"]
    reasons: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @property
    def permitted(self) -> bool:
        return self.effect == "permit"


def _encode_value(value: object) -> object:
    """``json.dumps`` hook for the Cedar values JSON has no form for."""
    if isinstance(value, EntityRef):
        return {"__entity": value.to_cedar()}
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a Cedar value: {value!r}")


def to_cedar_json(value: object) -> str:
    """Serialise entities, a context or any Cedar value to Cedar's JSON format."""
    return json.dumps(value, default=_encode_value, ensure_ascii=False)
