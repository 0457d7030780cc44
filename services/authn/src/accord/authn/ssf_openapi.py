"""The OpenAPI request-body schemas of the Shared Signals endpoints (openapi_extra).

The transmitter's handlers read raw JSON bodies (SSF's shapes are not pydantic models);
these schemas document exactly what the handlers refuse with a 400, so fuzzing the
OpenAPI document finds what a client could really send. Members the spec adds later are
ignored, and a stream's configuration is checked by `streams` (a push endpoint_url's rules
are not JSON Schema's).
"""

from __future__ import annotations

from typing import Any

from accord.authn.domain import streams
from accord.runtime.problems import documented

STREAM_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$"

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
NO_NUL = r"^[^\x00]*$"
STREAM_REF = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": STREAM_ID}
CONFIGURATION = (
    "A stream's receiver-supplied properties (SSF 1.0 §8.1.1). `delivery` is"
    f' `{{"method": "{streams.POLL}"}}` (poll, the default) or'
    f' `{{"method": "{streams.PUSH}", "endpoint_url": ..., "authorization_header": ...}}`'
    " (push: an http(s) URL with no credentials, never a link-local or metadata address)."
    " Transmitter-supplied properties may be echoed back but must match; `aud` is always the"
    " receiver the caller is."
)


def text(max_length: int) -> dict[str, Any]:
    """An optional printable text (null: absent)."""
    return {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": max_length,
        "pattern": PRINTABLE,
    }


def json_body(
    properties: dict[str, Any], required: tuple[str, ...] = (), description: str = ""
) -> dict[str, Any]:
    """openapi_extra documenting a JSON object body."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    body: dict[str, Any] = {"content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


EVENTS = {
    "type": ["array", "null"],
    "maxItems": streams.MAX_EVENTS_REQUESTED,
    "items": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": PRINTABLE},
}
NEW_STREAM = json_body(
    {"events_requested": EVENTS, "description": text(1024)}, description=CONFIGURATION
)
CHANGED_STREAM = json_body(
    {"stream_id": STREAM_REF, "events_requested": EVENTS, "description": text(1024)},
    ("stream_id",),
    CONFIGURATION,
)
STATUS_CHANGE = json_body(
    {
        "stream_id": STREAM_REF,
        "status": {"enum": list(streams.STATUSES)},
        "reason": text(256),
    },
    ("stream_id", "status"),
)
VERIFICATION = json_body({"stream_id": STREAM_REF, "state": text(256)}, ("stream_id",))
POLL_ERROR = {
    "type": "object",
    "properties": {"err": {"type": "string"}, "description": {"type": "string"}},
    "required": ["err", "description"],
}
NOT_NUL = {"type": "string", "pattern": NO_NUL}
POLL_REQUEST = json_body(
    {
        "maxEvents": {"type": "integer", "minimum": 0},
        "returnImmediately": {"type": "boolean"},
        "ack": {"type": "array", "maxItems": 5000, "items": NOT_NUL},
        "setErrs": {
            "type": "object",
            "maxProperties": 5000,
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {
                "type": "object",
                "properties": {"err": NOT_NUL, "description": NOT_NUL},
                "required": ["err"],
            },
        },
    },
    description="An RFC 8936 poll request (no body: the defaults, a long poll)",
)
POLL_REQUEST["requestBody"]["required"] = False
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: documented("The receiver has a push stream to that endpoint already")
}


def subjects(issuer: str) -> dict[str, Any]:
    """openapi_extra of subjects:add and subjects:remove: a stream and a subject identifier."""
    named = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[^\x00]+$"}

    def subject(fmt: str, member: str, **more: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"format": {"const": fmt}, member: named, **more},
            "required": ["format", member, *more],
        }

    identifiers = [
        subject("opaque", "id"),
        subject("email", "email"),
        subject("iss_sub", "sub", iss={"const": issuer}),
    ]
    return json_body(
        {"stream_id": STREAM_REF, "subject": {"oneOf": identifiers}}, ("stream_id", "subject")
    )
