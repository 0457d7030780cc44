"""What a SCIM resource's filters and sorts compare, computed once when the resource is written.

A filter compares the values of a resource in the form the comparison key of the policy gives
(``userName`` folded to lower case and NFC, ``externalId`` only NFC, ...). PostgreSQL cannot
apply that key itself: its ``lower()`` is not Python's, and the policy may be any function.
So every write keeps, beside the resource, its *folded* form (the column scim_resources.folded)::

    {"v": {urn: value or [values]},   # what ScimFilter.match compares, per attribute
     "p": [urn, ...],                 # the attributes for which ``pr`` holds
     "s": {urn: value},               # what SearchRequest.sort orders by (multi-valued only)
     "i": {urn: [{"v": ..., "p": ...}, ...]}}  # each value of a multi-valued complex one

and :mod:`accord.orchestrator.adapters.scim_sql` compares these exactly. The values are read
with the very functions scim2_models' own evaluator and sort use, so both agree by
construction; the contract test checks it on real data.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from inspect import isclass
from typing import Any

from scim2_models import AttributeBinding, BaseModel, Path
from scim2_models.messages.search_request import _sort_value
from scim2_models.path.resolution import attribute_host
from scim2_models.path.visitor import _Evaluator, _is_present
from scim2_server.utils import parametrize

COMPARABLE_TYPES: tuple[type, ...] = (str, bool, int, float, datetime)
"""The attribute types SQL compares: strings (and references), booleans, numbers, dateTimes.
Binary attributes (x509Certificates.value) are not folded: a filter on them falls back."""

_SAFE_URN = re.compile(r"[A-Za-z0-9:._$-]+")


class Unfoldable(ValueError):
    """A value SQL cannot compare as Python does (a naive dateTime, an infinite number)."""


@dataclass(frozen=True)
class FoldedAttributes:
    """The attributes of a model, as the folded form knows them."""

    present: dict[str, AttributeBinding]
    """The URNs whose ``pr`` the folded form holds, by URN: every attribute and sub-attribute."""
    compared: dict[str, AttributeBinding]
    """The URNs whose values it holds, by URN: those of :data:`COMPARABLE_TYPES`."""
    selectable: dict[str, AttributeBinding]
    """The multi-valued complex attributes, whose values it holds folded one by one for
    value selections (``emails[type eq "work"]``), by URN."""


@functools.cache
def folded_attributes(model: type[BaseModel]) -> FoldedAttributes:
    """Return the attributes of a model the folded form holds (meta and id are columns)."""
    bindings = [
        binding
        for path in parametrize(Path, model).iter_paths(include_subattributes=True)
        if (binding := path.resolve()) is not None and _SAFE_URN.fullmatch(binding.urn)
    ]
    compared = {
        b.urn: b
        for b in bindings
        if isclass(b.target_type) and issubclass(b.target_type, COMPARABLE_TYPES)
    }
    selectable = {
        b.urn: b
        for b in bindings
        if b.is_multivalued
        and b.sub_field_name is None
        and isclass(b.field_type)
        and issubclass(b.field_type, BaseModel)
    }
    return FoldedAttributes({b.urn: b for b in bindings}, compared, selectable)


def fold(resource: BaseModel) -> dict[str, Any]:
    """Return the folded form of a resource, under the policy of the current block.

    The values of a multi-valued complex attribute are folded too, one by one, under "i".

    :raises Unfoldable: When a value cannot be compared in SQL as Python compares it; the
        resource is then stored without its folded form, and searches of its type fall back
        to Python.
    """
    attributes = folded_attributes(type(resource))
    evaluator = _Evaluator(type(resource), resource)
    values: dict[str, Any] = {}
    sort_values: dict[str, Any] = {}
    for urn, binding in attributes.compared.items():
        actual = evaluator._read(binding)
        if isinstance(actual, list):
            values[urn] = [_comparable(binding, item) for item in actual]
        elif actual is not None:
            values[urn] = _comparable(binding, actual)
        if binding.is_multivalued:
            sort_value = encode(_sort_value(resource, binding))
            if sort_value is not None:
                sort_values[urn] = sort_value
    present = sorted(
        urn for urn, binding in attributes.present.items() if _present(evaluator, binding)
    )
    folded: dict[str, Any] = {"v": values, "p": present, "s": sort_values}
    items = {urn: _items(resource, binding) for urn, binding in attributes.selectable.items()}
    if items:
        folded["i"] = {urn: values for urn, values in items.items() if values is not None}
    return folded


def _items(obj: BaseModel, binding: AttributeBinding) -> list[dict[str, Any]] | None:
    """Return the folded values of a multi-valued complex attribute, as a selection reads them."""
    host = attribute_host(obj, binding)
    values = getattr(host, binding.field_name, None) if host is not None else None
    if not isinstance(values, list):
        return None
    if not all(isinstance(item, BaseModel) for item in values):
        raise Unfoldable("a multi-valued attribute holding other than complex values")
    return [fold(item) for item in values]


def _present(evaluator: _Evaluator, binding: AttributeBinding) -> bool:
    """Whether ``pr`` holds for an attribute, as ScimFilter.match decides it."""
    actual = evaluator._read(binding)
    if isinstance(actual, list) and binding.sub_field_name is not None:
        return any(_is_present(item) for item in actual)
    return _is_present(actual)


def _comparable(binding: AttributeBinding, value: Any) -> Any:
    """Return a value as comparisons see it; None for a string the policy cannot prepare.

    Such a string equals no value, as a missing one: only ``ne`` holds against either.
    """
    try:
        return encode(binding.comparable(value))
    except Unfoldable:
        raise
    except ValueError:
        return None


def encode(value: Any) -> Any:
    """Return a comparable value as JSON whose SQL comparisons are Python's.

    A dateTime becomes a fixed-width UTC string, whose code point order is chronological.

    :raises Unfoldable: When no JSON value compares as the Python one does.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unfoldable("an infinite or NaN number")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise Unfoldable("a dateTime without a time zone")
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise Unfoldable("a dateTime out of range in UTC") from None
        return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    if isinstance(value, BaseModel):
        raise Unfoldable("a complex value")
    raise Unfoldable(f"a value of type {type(value).__name__}")
