"""JSON Schema per event type and an AsyncAPI 3.0 document, generated from the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from accord.events import timestamps
from accord.events.envelope import CONTENT_TYPE, MAX_SEQUENCE
from accord.events.registry import REGISTRY, EventSpec, Registry

ASYNCAPI_FILE = "asyncapi.json"


def decimal_at_most(limit: int) -> str:
    """A pattern for the decimal whole numbers from 0 to limit, leading zeros allowed."""
    digits = str(limit)
    numbers = ["0", digits]
    if len(digits) > 1:
        numbers.append(f"[1-9][0-9]{{0,{len(digits) - 2}}}")
    # As many digits as the limit: its first i digits, then a smaller one, then any.
    for i, digit in enumerate(digits):
        lowest = 1 if i == 0 else 0
        if int(digit) > lowest:
            rest = len(digits) - i - 1
            numbers.append(
                f"{digits[:i]}[{lowest}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else "")
            )
    return "^0*(" + "|".join(numbers) + ")$"


_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka binary binding. The record key is required and "
    "equals ce_subject; a record without one is dead-lettered.",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject"],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "Unique event id; consumers dedupe on it.",
        },
        "ce_source": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "description": "URI-reference of the producer.",
        },
        "ce_type": {"type": "string", "minLength": 1, "description": "Event type; the topic."},
        "ce_time": {
            "type": "string",
            "format": "date-time",
            "pattern": timestamps.PATTERN,
            "description": f"RFC 3339 only: {timestamps.SHAPE}.",
        },
        "ce_subject": {
            "type": "string",
            "minLength": 1,
            "description": "Subject id; also the record key.",
        },
        "ce_dataschema": {
            "type": "string",
            "description": "urn:accord:events:TYPE:vN; the current version when absent.",
        },
        "ce_correlationid": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "Flow (saga/request) id; ce_id when absent.",
        },
        "ce_causationid": {"type": "string", "description": "Id of the causing event."},
        "ce_sequence": {
            "type": "string",
            "pattern": decimal_at_most(MAX_SEQUENCE),
            "description": f"Per-subject sequence, required on identity events: a decimal "
            f"whole number from 0 to {MAX_SEQUENCE} (PostgreSQL bigint).",
        },
        "ce_traceparent": {"type": "string", "description": "W3C trace context."},
        "ce_tracestate": {"type": "string", "description": "W3C trace state."},
        "content-type": {"const": CONTENT_TYPE},
    },
}
_IDENTITY_HEADERS_SCHEMA: dict[str, Any] = {
    "description": "The headers of an identity event: ce_sequence is required.",
    "allOf": [{"$ref": "#/components/schemas/CloudEventsHeaders"}],
    "required": ["ce_sequence"],
}
_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "Required: equals ce_subject, so one subject's events stay in order.",
}


def schema_filename(spec: EventSpec) -> str:
    """File name of a type's schema, e.g. `user.created.v1.json`."""
    return f"{spec.type}.v{spec.version}.json"


class ContractJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema, saying exactly what the strict reading of an event accepts."""

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        """Constrained keys as `propertyNames`: pydantic writes their pattern as
        `patternProperties`, which lets any key that misses the pattern through."""
        json_schema = super().dict_schema(schema)
        patterns = json_schema.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            json_schema["additionalProperties"] = values
            json_schema["propertyNames"] = {
                **json_schema.get("propertyNames", {}),
                "pattern": pattern,
            }
        return json_schema


def event_schema(spec: EventSpec) -> dict[str, Any]:
    """JSON Schema (2020-12) of one event type's data."""
    schema = spec.model.model_json_schema(mode="validation", schema_generator=ContractJsonSchema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": spec.dataschema,
        **schema,
        "x-accord-topic": spec.topic,
        "x-accord-subject-field": spec.model.subject_field,
        "x-accord-identity-event": spec.model.identity_event,
    }


def asyncapi(registry: Registry = REGISTRY) -> dict[str, Any]:
    """AsyncAPI 3.0 document of every topic, its DLQ and its message."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in registry:
        name = _ident(spec.type)
        headers = "IdentityEventHeaders" if spec.model.identity_event else "CloudEventsHeaders"
        messages[name] = {
            "name": spec.type,
            "title": spec.model.__name__,
            "summary": spec.description,
            "contentType": "application/json",
            "headers": {"$ref": f"#/components/schemas/{headers}"},
            "payload": {"$ref": f"./schemas/{schema_filename(spec)}"},
            "bindings": {"kafka": {"key": _KEY_SCHEMA, "bindingVersion": "0.5.0"}},
        }
        for channel, address, summary in (
            (name, spec.topic, spec.description),
            (f"{name}Dlq", spec.dlq, f"Dead letters of {spec.topic}, with accord-error headers."),
        ):
            channels[channel] = {
                "address": address,
                "summary": summary,
                "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            }
            operations[f"send{channel[0].upper()}{channel[1:]}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Accord identity events",
            "version": "1.0.0",
            "description": "Every topic of the Accord platform. Topics are named by event "
            "type; dead letters go to <topic>.dlq. Generated from accord.events.registry.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {
                "CloudEventsHeaders": _HEADERS_SCHEMA,
                "IdentityEventHeaders": _IDENTITY_HEADERS_SCHEMA,
            },
        },
    }


def render(registry: Registry = REGISTRY) -> dict[str, str]:
    """Every generated file, relative path -> text."""
    files = {f"schemas/{schema_filename(spec)}": _dump(event_schema(spec)) for spec in registry}
    files[ASYNCAPI_FILE] = _dump(asyncapi(registry))
    return files


def write(folder: Path, registry: Registry = REGISTRY) -> list[str]:
    """Write the generated files under folder, removing stale ones; returns what changed."""
    changed = []
    expected = render(registry)
    for stale in sorted((folder / "schemas").glob("*.json")):
        rel = str(stale.relative_to(folder))
        if rel not in expected:
            stale.unlink()
            changed.append(f"removed {rel}")
    for rel, text in expected.items():
        path = folder / rel
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(rel)
    return changed


def drift(folder: Path, registry: Registry = REGISTRY) -> list[str]:
    """Files that differ from what the registry generates (missing, stale or extra)."""
    expected = render(registry)
    found = {str(p.relative_to(folder)) for p in (folder / "schemas").glob("*.json")} | (
        {ASYNCAPI_FILE} if (folder / ASYNCAPI_FILE).exists() else set()
    )
    problems = [f"extra: {rel}" for rel in sorted(found - set(expected))]
    for rel, text in expected.items():
        path = folder / rel
        if not path.exists():
            problems.append(f"missing: {rel}")
        elif path.read_text() != text:
            problems.append(f"stale: {rel}")
    return problems


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _ident(event_type: str) -> str:
    head, *rest = event_type.replace("_", ".").split(".")
    return head + "".join(part.capitalize() for part in rest)
