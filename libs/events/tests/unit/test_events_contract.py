"""The consumers' parser accepts exactly what the published contract accepts.

Examples are derived from the checked-in files as a source system reads them: every JSON
Schema in `libs/events/schemas/` and the headers of `libs/events/asyncapi.json`. Each property
is given the type confusions lax parsers let through (`"yes"` and `1` for a boolean, `"1"`
for an integer), values at and beyond its bounds, other time formats and padded strings;
required properties are left out and unknown ones added. An independent validator
(jsonschema-rs, formats asserted) says whether the schema accepts each example, and every
example goes through `from_kafka`, the parser of every consumer: what the schema refuses
must be refused, what it accepts must be accepted.
"""

from __future__ import annotations

import copy
import json
import zoneinfo
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from accord.events import REGISTRY, InvalidEvent, KafkaRecord, from_kafka, to_kafka
from accord.events.catalogue.base import TIME_ZONE_FORMAT
from accord.events.schemas import schema_filename

from .conftest import EVENTS_FOLDER, sample_dict, sample_envelope

Location = tuple[str | int, ...]
Example = tuple[Location, Any]
#: An example that leaves the property out.
ABSENT = object()

#: What every property is given: type confusions, empty and blank values, other shapes.
PALETTE: tuple[Any, ...] = (
    *("yes", "true", "1", "1.5", "", " ", "null"),
    *(1, 0, -1, 1.0, 1.5, True, False, None),
    *([], ["x"], {}, {"x": 1}),
)
#: RFC 3339 and what is easily mistaken for it.
TIMES = (
    "2025-01-01T00:00:00Z",
    "2025-01-01t10:30:00.5z",
    "2025-01-01T00:00:00.123456789+05:30",
    "2025-01-01T00:00:00-00:00",
    "2016-12-31T23:59:60Z",
    "2016-12-31T18:59:60.25-05:00",
    "2016-12-31T22:59:60Z",
    "20250101T000000+0000",
    "20250101T000000Z",
    "2025-01-01T00:00:00",
    "2025-01-01 00:00:00Z",
    "2025-01-01T00:00Z",
    "2025-01-01T00:00:00+0530",
    "2025-01-01T00:00:00+05",
    "2025-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2025-13-01T00:00:00Z",
    "2025-01-01T24:00:00Z",
    "2025-01-01T00:00:00+24:00",
    "2025-01-01T00:00:00Z\n",
    "2025-01-01",
    "1735689600",
    "2025-W01-1T00:00:00Z",
)
#: RFC 3339 full-dates and what is easily mistaken for one.
DATES = (
    *("2025-01-01", "2024-02-29", "2025-02-29", "2025-13-01", "2025-00-10", "2025-01-32"),
    *("20250101", "2025-1-1", "01/03/2025", "2025-W01-1", "2025-001", "2025-01-01Z"),
    *("2025-01-01 ", "2025-01-01T", "+2025-01-01", "0000-01-01", "0999-12-31", "1000-01-01"),
    *("0000-01-01T00:00:00Z", "0999-12-31T23:59:59Z", "1000-01-01T00:00:00-01:00"),
)
#: Time zone names, known and unknown to the tz database.
TIME_ZONES = (
    *("Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "UTC", "GMT0"),
    *("europe/paris", "Europe/Atlantis", "Mars/Olympus", "localtime", "posixrules", "Etc"),
    *("Europe//Paris", "/Europe/Paris", "Europe/Paris/", "CET ", "+01:00"),
)


def published_schema(event_type: str) -> dict[str, Any]:
    """A type's JSON Schema as checked in, i.e. as published."""
    path = EVENTS_FOLDER / "schemas" / schema_filename(REGISTRY.spec(event_type))
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _is_time_zone(name: str) -> bool:
    """The `iana-time-zone` format: a zone the tz database holds (zoneinfo's own answer, not
    the catalogue's list of names)."""
    if name in ("localtime", "posixrules", "Factory"):
        return False  # files in the database's folder, not zones a person works in
    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):  # a folder: IsADirectoryError
        return False
    return True


def oracle(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """An independent validator of the schema; formats (date-time, date, the time zone
    names' own) are asserted."""
    return jsonschema_rs.Draft202012Validator(
        schema, validate_formats=True, formats={TIME_ZONE_FORMAT: _is_time_zone}
    )


# --- examples derived from a schema --------------------------------------------------------


class Deriver:
    """Examples for every property of a schema, at any depth, around a valid document."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema a local `$ref` points at (itself when it has none)."""
        while "$ref" in schema:
            node: Any = self.root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def branches(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """The alternatives of a property (`anyOf`), resolved."""
        schema = self.resolve(schema)
        return [self.resolve(b) for b in schema.get("anyOf", [])] or [schema]

    def object_examples(
        self, schema: dict[str, Any], document: dict[str, Any], at: Location = ()
    ) -> Iterator[Example]:
        """Examples of an object with properties: each property in turn, missing and
        unknown properties."""
        schema = self.resolve(schema)
        properties: dict[str, Any] = schema.get("properties", {})
        yield (*at, "unexpected_property"), "x"
        for name, subschema in properties.items():
            yield (*at, name), ABSENT
            for value in self.values(subschema, document.get(name)):
                yield (*at, name), value
            for branch in self.branches(subschema):
                current = document.get(name)
                if "properties" in branch and isinstance(current, dict):
                    yield from self.object_examples(branch, current, (*at, name))
                items = self.resolve(branch.get("items", {}))
                if "properties" in items and isinstance(current, list) and current:
                    yield from self.object_examples(items, current[0], (*at, name, 0))

    def values(self, schema: dict[str, Any], current: Any) -> Iterator[Any]:
        """Values for one property: the palette and what its schema's keywords suggest."""
        yield from PALETTE
        for branch in self.branches(schema):
            for values in (branch.get("enum", []), [branch["const"]] if "const" in branch else []):
                for value in values:
                    yield value
                    if isinstance(value, str):
                        yield from (value.upper(), f" {value}", f"{value}\n")
            kind = branch.get("type")
            if kind == "string":
                yield from self.strings(branch, current)
            elif kind in ("integer", "number"):
                yield from self.numbers(branch, integer=kind == "integer")
            elif kind == "array":
                yield from self.arrays(branch, current)
            elif kind == "object" and "properties" not in branch:
                yield from self.maps(branch)

    def strings(self, schema: dict[str, Any], current: Any) -> Iterator[str]:
        seed = current if isinstance(current, str) and current else "x"
        yield from (f" {seed}", f"{seed} ", f"\t{seed}", f"{seed}\n", f"{seed}\x00", f"é{seed}")
        yield from ("   ", "\n", seed.upper())
        if "maxLength" in schema:
            longest = schema["maxLength"]
            yield ("a" * longest + seed)[-longest:]
            yield "a" * (longest + 1 - len(seed)) + seed
        if schema.get("minLength", 0) > 0:
            yield seed[: schema["minLength"] - 1]
        formats = {schema.get("format")} | {b.get("format") for b in schema.get("anyOf", [])}
        if "date-time" in formats:
            yield from TIMES
        if "date" in formats:
            yield from DATES
        if TIME_ZONE_FORMAT in formats:
            yield from TIME_ZONES

    def numbers(self, schema: dict[str, Any], *, integer: bool) -> Iterator[Any]:
        bounds = [
            schema.get(k) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        ]
        steps = (1,) if integer else (1, 1e-9)
        for bound in (b for b in bounds if b is not None):
            yield from (bound, float(bound))
            for step in steps:
                yield from (bound - step, bound + step)
        yield from (2.0, 2.5, 2**63, -(2**63) - 1, 1e20, 1e300, "2")

    def arrays(self, schema: dict[str, Any], current: Any) -> Iterator[list[Any]]:
        yield from ([value] for value in PALETTE)
        if not (isinstance(current, list) and current):
            return
        item = current[0]
        if "maxItems" in schema:
            yield from ([item] * schema["maxItems"], [item] * (schema["maxItems"] + 1))
        if schema.get("minItems", 0) > 0:
            yield [item] * (schema["minItems"] - 1)
        yield [*current, None]

    def maps(self, schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from ({"k": value} for value in PALETTE)
        yield from ({"": "v"}, {" ": "v"}, {"a\x00b": "v"}, {" k ": " v "}, {"k" * 257: "v"})
        if "maxProperties" in schema:
            most = schema["maxProperties"]
            yield from ({f"k{i}": "v" for i in range(n)} for n in (most, most + 1))


def with_example(document: dict[str, Any], location: Location, value: Any) -> Any:
    """A copy of the document with the value at the location (ABSENT: left out)."""
    changed = copy.deepcopy(document)
    node: Any = changed
    for step in location[:-1]:
        node = node[step]
    if value is ABSENT:
        node.pop(location[-1], None)
    else:
        node[location[-1]] = value
    return changed


# --- the consumer's parser -----------------------------------------------------------------


def with_header(record: KafkaRecord, name: str, value: bytes) -> list[tuple[str, bytes]]:
    """The record's headers with one replaced."""
    return [(k, v) for k, v in record.headers if k != name] + [(name, value)]


def parser_verdict(record: KafkaRecord, **changes: Any) -> str | None:
    """None when from_kafka accepts the record (with changes), else its reason."""
    try:
        from_kafka(
            record.topic,
            changes.get("key", record.key),
            changes.get("value", record.value),
            changes.get("headers", list(record.headers)),
        )
    except InvalidEvent as error:
        return error.reason
    return None


def data_disagreements(event_type: str) -> list[str]:
    """Where the parser and the published schema disagree about a type's data."""
    schema = published_schema(event_type)
    validator = oracle(schema)
    sample = sample_dict(event_type)
    assert validator.is_valid(sample), f"the sample of {event_type} breaks its schema"
    record = to_kafka(sample_envelope(event_type))
    subject_field = schema["x-accord-subject-field"]
    found = []
    for location, value in Deriver(schema).object_examples(schema, sample):
        document = with_example(sample, location, value)
        accepted = validator.is_valid(document)
        changes: dict[str, Any] = {"value": json.dumps(document).encode()}
        if accepted and document[subject_field] != sample[subject_field]:
            subject = document[subject_field].encode()
            changes |= {"key": subject, "headers": with_header(record, "ce_subject", subject)}
        reason = parser_verdict(record, **changes)
        refused_as_data = reason is not None and "data is invalid" in reason
        if accepted != (reason is None) or (not accepted and not refused_as_data):
            shown = "(absent)" if value is ABSENT else repr(value)[:60]
            verdict = "accepts" if reason is None else f"refuses ({reason[:120]})"
            found.append(
                f"{'.'.join(map(str, location))} = {shown}: the schema "
                f"{'accepts' if accepted else 'refuses'} it, the parser {verdict}"
            )
    return found


@pytest.mark.parametrize("event_type", [spec.type for spec in REGISTRY])
def test_the_parser_accepts_exactly_what_the_published_schema_accepts(event_type: str) -> None:
    disagreements = data_disagreements(event_type)
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(
        disagreements[:40]
    )


# --- headers -------------------------------------------------------------------------------

#: Headers the parser checks one by one. ce_type, ce_subject and ce_dataschema are left
#: out: whether they fit depends on the topic and the data, which no header schema can say.
HEADER_VALUES: dict[str, tuple[str, ...]] = {
    "ce_specversion": ("1.0", "0.3", "1", ""),
    "ce_id": ("e", "", " ", "i" * 128, "i" * 129),
    "ce_source": ("urn:x", "", "s" * 256, "s" * 257),
    "ce_time": TIMES,
    "ce_correlationid": ("c", "", "c" * 128, "c" * 129),
    "ce_causationid": ("c", ""),
    "ce_sequence": (
        *("0", "42", "007", "-1", "1.5", "1e3", " 7", "+3", "1_000", "", "٣"),
        *("9223372036854775807", "09223372036854775807", "9223372036854775808"),
        *("99999999999999999999", "1" * 5000),
    ),
    "ce_traceparent": ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""),
    "content-type": ("application/json", "text/plain", "application/xml", ""),
}


def header_oracle(event_type: str) -> jsonschema_rs.Validator:
    """The published header schema of a type's message, as a validator."""
    document = json.loads((EVENTS_FOLDER / "asyncapi.json").read_text())
    message = next(
        m for m in document["components"]["messages"].values() if m["name"] == event_type
    )
    schema = {"components": {"schemas": document["components"]["schemas"]}, **message["headers"]}
    return oracle(schema)


@pytest.mark.parametrize("event_type", ["user.created", "access.requested"])
def test_the_parser_accepts_exactly_the_headers_the_published_schema_accepts(
    event_type: str,
) -> None:
    validator = header_oracle(event_type)
    record = to_kafka(sample_envelope(event_type))
    headers = {name: value.decode() for name, value in record.headers}
    assert validator.is_valid(headers)
    disagreements = []
    for name, values in HEADER_VALUES.items():
        for value in (None, *values):
            changed = {k: v for k, v in headers.items() if k != name}
            if value is not None:
                changed[name] = value
            accepted = validator.is_valid(changed)
            raw = {k: v.encode() for k, v in changed.items()}
            reason = parser_verdict(record, headers=list(raw.items()))
            if accepted != (reason is None):
                disagreements.append(
                    f"{name} = {value!r:.60}: the schema {'accepts' if accepted else 'refuses'}"
                    f" it, the parser {'accepts' if reason is None else f'refuses ({reason})'}"
                )
    assert not disagreements, "\n".join(disagreements)


def test_the_examples_reach_every_property_of_every_schema() -> None:
    """The derivation misses nothing: each property of each published schema gets examples."""
    for path in sorted((EVENTS_FOLDER / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        sample = sample_dict(schema["x-accord-topic"])
        seen = {location[:1] for location, _ in Deriver(schema).object_examples(schema, sample)}
        assert {(name,) for name in schema["properties"]} <= seen, path.name


def test_the_oracle_refuses_what_the_issue_reported() -> None:
    """The validator judging the examples is itself strict where lax parsing went wrong."""
    validator = oracle(published_schema("user.created"))
    sample = sample_dict("user.created")
    for value in ("yes", 1, "true"):
        assert not validator.is_valid({**sample, "active": value})
    assert not oracle({"type": "string", "format": "date-time"}).is_valid("20250101T000000+0000")


def test_a_blank_text_given_in_python_is_what_the_schema_accepts() -> None:
    """An HTTP body is validated in Python mode: a text of blanks, which the JSON Schema
    accepts (minLength 1), must not be stripped to nothing and refused (schemathesis ST202);
    other texts are still stripped."""
    from pydantic import BaseModel

    from accord.events.catalogue.base import ShortText

    class Body(BaseModel):
        name: ShortText

    assert Body.model_validate({"name": "\n"}).name == "\n"
    assert Body.model_validate({"name": "  Ada "}).name == "Ada"
