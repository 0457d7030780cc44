"""SCIM attribute paths: which value of a SCIM resource becomes a row's field.

A subset of RFC 7644's attribute paths (section 3.10) and value filters, enough to name one
value of a User:

    userName                                   a simple attribute
    name.givenName                             a sub-attribute of a complex one
    emails.value                               a multi-valued one: the primary value, else the first
    emails[type eq "work"].value               the first value whose sub-attribute equals a literal
    emails[primary eq true].value              (a "string", true, false or a number)
    urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber
    urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value

Names are matched without case (RFC 7643 section 2.1), string literals too (most SCIM
attributes, `type` among them, are not case-exact). Only `eq` is supported: a row field is one
value, and "the primary, else the first" covers the common case without a filter. Pure: the
config checks paths with it, the scim reader reads resources with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
_NAME = r"[A-Za-z][A-Za-z0-9_$-]*"
_LITERAL = r'"(?:[^"\\]|\\.)*"|true|false|-?[0-9]+(?:\.[0-9]+)?'
_PATH = re.compile(
    rf"^(?:(?P<urn>urn:[A-Za-z0-9:._-]+):)?(?P<attribute>{_NAME})"
    rf"(?:\[\s*(?P<test>{_NAME})\s+eq\s+(?P<literal>{_LITERAL})\s*\])?"
    rf"(?:\.(?P<sub>{_NAME}))?$"
)


class NoSingleValue(ValueError):
    """The path names a complex or multi-valued value that is no single text."""


@dataclass(frozen=True, slots=True)
class ScimPath:
    """A parsed attribute path."""

    text: str
    """The path as written (the row's field name when no other is given)."""
    schema: str | None
    """The extension schema URN the attribute is in; None for the core User schema."""
    attribute: str
    test: tuple[str, Any] | None
    """The value filter's sub-attribute and literal (`type`, "work"), if any."""
    sub: str | None

    @property
    def requested(self) -> str:
        """The attribute to ask the provider for (`attributes=`): the top-level one."""
        return f"{self.schema}:{self.attribute}" if self.schema else self.attribute

    def value(self, resource: dict[str, Any]) -> str:
        """The path's value in the resource as text: "" when absent (not set)."""
        container: Any = resource
        if self.schema is not None:
            container = _get(resource, self.schema)
        found = _get(container, self.attribute)
        if self.test is not None:
            found = _matching(found, *self.test)
        elif isinstance(found, list):
            found = _primary(found)
        if self.sub is not None:
            found = _get(found, self.sub)
        return _text(found, self.text)


def parse_path(text: str) -> ScimPath:
    """The path, or ValueError naming what is wrong with it."""
    match = _PATH.match(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is no SCIM attribute path (e.g. userName, name.givenName, "
            'emails[type eq "work"].value, urn:...:enterprise:2.0:User:employeeNumber)'
        )
    schema = match["urn"]
    if schema is not None and schema.casefold() == CORE_USER.casefold():
        schema = None
    test = None
    if match["test"] is not None:
        test = (match["test"], json.loads(match["literal"]))
    return ScimPath(text, schema, match["attribute"], test, match["sub"])


def _get(container: Any, name: str) -> Any:
    """`container[name]` without case, None when absent or when `container` is no object."""
    if not isinstance(container, dict):
        return None
    if name in container:
        return container[name]
    folded = name.casefold()
    for key, value in container.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _primary(values: list[Any]) -> Any:
    for value in values:
        if _get(value, "primary") is True:
            return value
    return values[0] if values else None


def _matching(found: Any, name: str, literal: Any) -> Any:
    values = found if isinstance(found, list) else [found]
    for value in values:
        if _equal(_get(value, name), literal):
            return value
    return None


def _equal(value: Any, literal: Any) -> bool:
    if isinstance(literal, bool) or isinstance(value, bool):
        return value is literal  # true is no 1
    if isinstance(literal, str):
        return isinstance(value, str) and value.casefold() == literal.casefold()
    return isinstance(value, int | float) and value == literal


def _text(value: Any, path: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    kind = "a list" if isinstance(value, list) else "an object"
    raise NoSingleValue(f"{path} is {kind}, not one value (name a sub-attribute)")
