"""Schemathesis hooks for test_api_fuzzing.py (`st run` loads them: SCHEMATHESIS_HOOKS).

Besides what schemathesis generates, every operation of every document gets explicit cases
(issue 18): each path and query parameter, each top-level body field and then every string
of the body in turn holds a NUL, an over-long value, a value of the wrong type and a well
formed value that names nothing; the body gets a field the schema does not declare. They run
in the examples phase, before the time budget is spent on fuzzing, so every route gets them
on every run; the checks say no answer is a 5xx and every answer is as documented. A check of
our own says no error body repeats what was planted in the request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, HookContext, Response
from schemathesis.core.failures import Failure

# The Shared Signals receiver takes a SET as `application/secevent+jwt` (RFC 8935): a compact
# JWS, text on the wire.
schemathesis.serializer.alias("application/secevent+jwt", "text/plain")

#: In every planted value, so the echo check can find it in an answer.
MARK = "Zq9Planted"
#: Longer than any maxLength of the APIs (256 for text, 2048 for justifications), and than
#: a PostgreSQL btree entry (about 2,700 bytes): an unbounded value fails there, if anywhere.
LONG_PATH = 3000
LONG_BODY = 10_000


def nul(value: Any) -> str:
    """A text holding U+0000 (PostgreSQL stores none)."""
    return f"{MARK}\x00{value if isinstance(value, str) else ''}"


def long(length: int) -> str:
    """An over-long text."""
    return MARK + "x" * length


def wrong_type(schema: dict[str, Any]) -> Any:
    """A value of another JSON type than the schema's."""
    return {MARK: MARK} if "string" in _types(schema) else f"{MARK}-not-{'-'.join(_types(schema))}"


def _types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (possibly anyOf/oneOf) schema admits."""
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            found |= _types(part)
    return found - {"null"}


@schemathesis.hook
def before_add_examples(context: HookContext, examples: list[Case]) -> None:
    """After the positive example of an operation, the same with one planted value each."""
    operation = context.operation
    if operation is None or not examples:
        return
    base = examples[0]
    variants: list[Case] = []

    def add(**changes: Any) -> None:
        fields = {
            "path_parameters": dict(base.path_parameters or {}),
            "query": dict(base.query or {}),
            "headers": dict(base.headers or {}),
            "body": base.body,
            "media_type": base.media_type,
        }
        for name, change in changes.items():
            fields[name] = change(fields[name]) if callable(change) else change
        variants.append(operation.Case(**fields))

    for parameter in operation.path_parameters:
        schema = parameter.definition.get("schema", {})
        for value in _planted(base.path_parameters.get(parameter.name), schema, LONG_PATH):
            add(path_parameters=_with(parameter.name, value))
    for parameter in operation.query:
        schema = parameter.definition.get("schema", {})
        for value in _planted((base.query or {}).get(parameter.name), schema, LONG_PATH):
            add(query=_with(parameter.name, value))
    for alternative in operation.body:
        if alternative.media_type != base.media_type:
            continue
        schema = alternative.resolved_schema
        properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
        body = base.body if isinstance(base.body, dict) else {}
        for name, field in properties.items():
            for value in _planted(body.get(name), field, LONG_BODY):
                add(body={**body, name: value})
        if properties:
            add(body={**body, MARK: MARK})  # a field the schema does not declare
        if isinstance(base.body, dict | list | str):
            add(body=_every_string(base.body, nul, names=True))
            add(body=_every_string(base.body, lambda _: long(LONG_BODY), names=False))
    examples.extend(variants)


def _planted(value: Any, schema: dict[str, Any], length: int) -> Iterator[Any]:
    yield nul(value)
    yield long(length)
    yield wrong_type(schema)
    if "string" in _types(schema):
        yield MARK  # well formed, but naming nothing there is: a 404 must not repeat it


def _with(name: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda values: {**values, name: value}


def _every_string(value: Any, plant: Callable[[str], str], *, names: bool) -> Any:
    """The value with every string in it (and the names of its objects, if names) planted."""
    if isinstance(value, str):
        return plant(value)
    if isinstance(value, dict):
        return {
            plant(k) if names else k: _every_string(v, plant, names=names) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_every_string(v, plant, names=names) for v in value]
    return value


@schemathesis.check
def no_planted_input_in_errors(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """An error body never repeats the request's input (README, Security)."""
    if response.status_code < 400 or MARK not in json.dumps(_sent(case), default=str):
        return None
    if MARK in response.text:
        raise Failure(
            operation=case.operation.label,
            title="An error repeats the input",
            message=f"The {response.status_code} answer repeats a value of the request",
        )
    return None


def _sent(case: Case) -> dict[str, Any]:
    body = case.body if isinstance(case.body, dict | list | str | int | float | bool) else None
    return {"path": case.path_parameters, "query": case.query, "body": body}
