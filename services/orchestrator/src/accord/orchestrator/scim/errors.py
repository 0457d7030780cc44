"""SCIM error details that never repeat the request's input.

scim2-server and scim2-models write helpful details, some of which quote the request: an
unknown attribute's name ("Extra inputs are not permitted: <name>"), a filter's unknown path,
an id that was not found. Accord repeats no input in an error (a value may be a secret, a
made-up name a pasted one): such a detail becomes a generic one for its `scimType`. Details
that only name the attributes of the schemas, as most do, are kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from scim2_models import Attribute, Extension, Resource

#: Words of the SCIM protocol a detail may use without quoting the request: endpoints, the
#: common attributes (RFC 7643 3.1, in no schema), the messages' attributes, the keywords.
_PROTOCOL = {
    "schemas",
    "id",
    "externalId",
    "meta",
    "resourceType",
    "created",
    "lastModified",
    "location",
    "version",
    "v2",
    "Users",
    "Groups",
    "Me",
    "Bulk",
    ".search",
    "Schemas",
    "ResourceTypes",
    "ServiceProviderConfig",
    "Operations",
    "op",
    "path",
    "value",
    "add",
    "remove",
    "replace",
    "and",
    "not",
    "true",
    "false",
    "null",
    "ascending",
    "descending",
    "filter",
    "attributes",
    "excludedAttributes",
    "sortBy",
    "sortOrder",
    "startIndex",
    "count",
    "cursor",
}
#: Shorter words (eq, or, 1, a) are in details by chance, and give nothing away.
_SHORTEST = 3
_WORD = re.compile(r"[^\s\"'()\[\],]+")
_GENERIC = {
    "invalidFilter": "the filter is not valid",
    "invalidSyntax": "the request does not follow the SCIM schemas",
    "invalidPath": "an attribute path is not valid",
    "invalidValue": "a value is not valid for its attribute",
    "noTarget": "the path matches no attribute or value",
    "mutability": "an attribute cannot be changed this way",
    "uniqueness": "a unique value is taken already",
    "tooMany": "the request asks for too many results",
}
_BY_STATUS = {404: "not found", 409: "conflict", 412: "the version does not match"}


def schema_words(models: Iterable[type[Resource[Any]] | type[Extension]]) -> frozenset[str]:
    """The names a detail may use: the protocol's words, and the models' attributes and URNs."""
    words = {word.lower() for word in _PROTOCOL}
    for model in models:
        schema = model.to_schema()
        words.add(str(schema.id).lower())
        words |= {name.lower() for name in _attribute_names(schema.attributes or [])}
    return frozenset(words)


def _attribute_names(attributes: Iterable[Attribute]) -> Iterator[str]:
    for attribute in attributes:
        if attribute.name:
            yield attribute.name
        yield from _attribute_names(attribute.sub_attributes or [])


def quiet(
    body: dict[str, Any], *, path: str, query: dict[str, str], payload: bytes, known: frozenset[str]
) -> dict[str, Any]:
    """The error body, its detail made generic if it quotes the path, the query or the body."""
    detail = str(body.get("detail") or "")
    inputs = set(_words(path.split("/")))
    inputs |= set(_words(query.values()))
    inputs |= set(_words(_strings(payload)))
    quoted = [w for w in inputs if len(w) >= _SHORTEST and w.lower() not in known and w in detail]
    if not quoted:
        return body
    status = int(body.get("status") or 400)
    generic = _GENERIC.get(str(body.get("scimType")), _BY_STATUS.get(status, "the request failed"))
    return {**body, "detail": generic}


def _words(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        yield text
        yield from _WORD.findall(text)


def _strings(payload: bytes) -> Iterator[str]:
    """Every name and string of a JSON body (none if it is not JSON)."""
    try:
        pending: list[Any] = [json.loads(payload)] if payload else []
    except (ValueError, RecursionError):
        return
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
