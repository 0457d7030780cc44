"""SCIM filters and sorts as SQL over the folded form of the resources (scim_folding).

:func:`where` turns the syntax tree of a filter into a parameterised WHERE clause over
``scim_resources`` and :func:`order_by` a sortBy into an ORDER BY, both meaning exactly what
``ScimFilter.match`` and ``SearchRequest.sort`` mean (RFC 7644 3.4.2.2 and 3.4.2.3):

- and, or, not; eq, ne, co, sw, ew, gt, ge, lt, le and pr on every attribute and
  sub-attribute of a string, reference, boolean, number or dateTime type, single or
  multi-valued (a multi-valued one matches when any value does; ``ne`` when none equals);
- an attribute the model does not declare matches nothing (RFC 7644 3.4.2.1);
- string values compare in the form the policy's comparison key gave them when they were
  written, by code point (COLLATE "C"), as Python compares strings.

- a value selection on a multi-valued complex attribute (``emails[type eq "work" and
  value co "@example"]``): some value matches the inner filter.

Anything else raises :class:`Untranslatable`, and the storage then searches in Python: a
comparison with ``null``, a filter on ``id`` or ``meta``, on a binary attribute, with a
dateTime without a time zone, or a value selection with a sub-attribute (PATCH paths only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scim2_models import AttributeBinding, BaseModel, Resource, SearchRequest
from scim2_models.path import (
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from scim2_models.path.resolution import _resolve_filter_path, coerce_value

from accord.orchestrator.adapters.scim_folding import Unfoldable, encode, folded_attributes

_ORDERINGS = {
    CompareOperator.gt: ">",
    CompareOperator.ge: ">=",
    CompareOperator.lt: "<",
    CompareOperator.le: "<=",
}


_STRING_OPERATORS = (CompareOperator.co, CompareOperator.sw, CompareOperator.ew)


class Untranslatable(Exception):
    """A filter or a sort SQL cannot evaluate exactly as Python does."""


@dataclass
class Parameters:
    """The values of a statement, numbered from ``$first``."""

    first: int = 1
    values: list[Any] = field(default_factory=list)

    def add(self, value: Any) -> str:
        """Return the placeholder of a new value."""
        self.values.append(value)
        return f"${self.first + len(self.values) - 1}"


def where(
    node: FilterNode, model: type[BaseModel], parameters: Parameters, root: str = "folded"
) -> str:
    """Return a boolean SQL expression (never NULL) true for the rows the filter matches.

    ``root`` is the folded form the filter reads: the row's, or a value's in a selection.

    :raises Untranslatable: When SQL cannot evaluate the filter exactly.
    """
    if isinstance(node, LogicalExpr):
        joiner = " AND " if node.op == LogicalOperator.and_ else " OR "
        terms = (where(term, model, parameters, root) for term in node.terms)
        return "(" + joiner.join(terms) + ")"
    if isinstance(node, Not):
        return f"(NOT {where(node.expr, model, parameters, root)})"
    if isinstance(node, Present):
        binding = _resolve_filter_path(model, node.attr_path, strict=False)
        if binding is None:
            return "FALSE"
        if binding.urn not in folded_attributes(model).present:
            raise Untranslatable(f"{node.attr_path} pr")
        return f"({root}->'p' ? {_literal(binding.urn)})"
    if isinstance(node, Comparison):
        return _comparison(node, model, parameters, root)
    if isinstance(node, ValuePath) and root == "folded":
        return _selection(node, model, parameters)
    raise Untranslatable(type(node).__name__)


def _selection(node: ValuePath, model: type[BaseModel], parameters: Parameters) -> str:
    """A value selection: some value of the attribute matches the inner filter."""
    binding = _resolve_filter_path(model, node.attr_path, strict=False)
    if binding is None:
        return "FALSE"
    if node.sub_attr is not None or binding.urn not in folded_attributes(model).selectable:
        raise Untranslatable(str(node))
    item_model = binding.field_type
    assert isinstance(item_model, type)  # selectable: complex values (folded_attributes)
    assert issubclass(item_model, BaseModel)
    inner = where(node.val_filter, item_model, parameters, root="i.v")
    items = f"folded->'i'->{_literal(binding.urn)}"
    return (
        f"(EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({items}) = 'array'"  # noqa: S608
        f" THEN {items} ELSE '[]'::jsonb END) AS i (v) WHERE {inner}))"
    )


def order_by(search_request: SearchRequest[Any], model: type[Resource[Any]]) -> str:
    """Return the ORDER BY of SearchRequest.sort, ties in the order of creation.

    Python's sort is stable (also reversed), and the rows come to it by (created, id): the
    resources without a value come last ascending and first descending.
    """
    tie = "created, id"
    binding = search_request.sort_binding(model)
    if binding is None:
        return tie
    if binding.urn not in folded_attributes(model).compared:
        raise Untranslatable(f"sortBy {search_request.sort_by}")
    source = "s" if binding.is_multivalued else "v"
    if _is_text(binding):
        key = f"(folded->'{source}'->>{_literal(binding.urn)}) COLLATE \"C\""
    else:
        key = f"NULLIF(folded->'{source}'->{_literal(binding.urn)}, 'null'::jsonb)"
    descending = search_request.sort_order == SearchRequest.SortOrder.descending
    direction = "DESC NULLS FIRST" if descending else "ASC NULLS LAST"
    return f"{key} {direction}, {tie}"


def _comparison(node: Comparison, model: type[BaseModel], parameters: Parameters, root: str) -> str:
    binding = _resolve_filter_path(model, node.attr_path, strict=False, for_comparison=True)
    if binding is None:
        return "FALSE"
    if binding.urn not in folded_attributes(model).compared:
        raise Untranslatable(str(node))
    expected = coerce_value(binding, node.value, node.op)
    if expected is None:
        raise Untranslatable(str(node))
    try:
        comparable = binding.comparable(expected)
    except ValueError:
        # A string the policy cannot prepare equals no value: only ne holds.
        return "TRUE" if node.op == CompareOperator.ne else "FALSE"
    if node.op in _STRING_OPERATORS and not isinstance(comparable, str):
        return "FALSE"  # Python compares only strings so.
    try:
        value = encode(comparable)
    except Unfoldable:
        raise Untranslatable(str(node)) from None
    urn = _literal(binding.urn)
    if not binding.is_multivalued:
        # The text form of a single value is what the expression indexes hold.
        return _compare(node.op, value, f"{root}->'v'->{urn}", f"({root}->'v'->>{urn})", parameters)
    each = _compare(node.op, value, "e.v", "(e.v #>> '{}')", parameters)
    values = f"{root}->'v'->{urn}"
    elements = (
        f"jsonb_array_elements(CASE WHEN jsonb_typeof({values}) = 'array'"
        f" THEN {values} ELSE '[]'::jsonb END) AS e (v)"
    )
    if node.op == CompareOperator.ne:
        # No value equals the operand (the universal reading of scim2_models).
        return f"(NOT EXISTS (SELECT 1 FROM {elements} WHERE NOT {each}))"  # noqa: S608
    return f"(EXISTS (SELECT 1 FROM {elements} WHERE {each}))"  # noqa: S608


def _compare(op: CompareOperator, value: Any, json_: str, text: str, parameters: Parameters) -> str:
    """Compare one stored value (as jsonb, and as text) with a comparable operand.

    A missing value (SQL NULL) or one the policy could not prepare (JSON null) satisfies
    only ``ne``, as in Python. Every comparison is two-valued without COALESCE, which would
    hide it from the indexes: ``x IS NOT NULL AND x op $n`` is FALSE, not NULL, when x is.
    """
    if isinstance(value, str):
        return _compare_text(op, value, text, parameters)
    operand = parameters.add(json.dumps(value))
    equal = f"{json_} = ({operand}::text)::jsonb"
    if op == CompareOperator.eq:
        return f"({json_} IS NOT NULL AND {equal})"
    if op == CompareOperator.ne:
        return f"({json_} IS NULL OR NOT {equal})"
    if isinstance(value, bool):
        return "FALSE"  # No ordering of booleans (refused when the filter is bound).
    return (
        f"(CASE WHEN jsonb_typeof({json_}) = 'number'"
        f" THEN ({json_})::numeric {_ORDERINGS[op]} ({operand}::text)::numeric ELSE FALSE END)"
    )


def _compare_text(op: CompareOperator, value: str, text: str, parameters: Parameters) -> str:
    collated = f'{text} COLLATE "C"'
    if op == CompareOperator.ne:
        return f"({text} IS NULL OR {collated} <> {parameters.add(value)})"
    if op == CompareOperator.eq:
        condition = f"{collated} = {parameters.add(value)}"
    elif op == CompareOperator.sw:
        condition = _starts_with(value, collated, parameters)
    elif op == CompareOperator.co:
        condition = f"{text} LIKE {parameters.add('%' + _escape_like(value) + '%')}"
    elif op == CompareOperator.ew:
        condition = f"{text} LIKE {parameters.add('%' + _escape_like(value))}"
    else:
        condition = f"{collated} {_ORDERINGS[op]} {parameters.add(value)}"
    return f"({text} IS NOT NULL AND {condition})"


def _starts_with(prefix: str, collated: str, parameters: Parameters) -> str:
    """Return ``sw`` as a range of code points, which a btree index (COLLATE "C") serves.

    The strings starting with p are exactly those from p up to, excluding, p with its last
    character incremented.
    """
    upper = _successor(prefix)
    lower = f"{collated} >= {parameters.add(prefix)}"
    if upper is None:
        return lower
    return f"{lower} AND {collated} < {parameters.add(upper)}"


def _successor(prefix: str) -> str | None:
    """Return the least string greater than every string starting with prefix, if any."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if last == 0xD800:
            last = 0xE000  # Surrogates are no characters of text.
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None


def _escape_like(value: str) -> str:
    """Escape the wildcards of LIKE, whose escape character is the backslash."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _is_text(binding: AttributeBinding) -> bool:
    """Whether a binding's values are folded to strings (strings, references, dateTimes)."""
    target = binding.target_type
    return isinstance(target, type) and issubclass(target, str | datetime)


def _literal(urn: str) -> str:
    """Quote a URN as SQL: URNs hold only [A-Za-z0-9:._$-] (folded_attributes checks)."""
    return "'" + urn + "'"
