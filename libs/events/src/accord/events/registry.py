"""One registry maps event type -> model -> topic, and upcasts old schema versions."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from accord.events import topics
from accord.events.catalogue import CATALOGUE, EventData
from accord.events.errors import InvalidEvent, UnknownEventType, describe_validation_error

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
SCHEMA_URN = "urn:accord:events:{type}:v{version}"


@dataclass(frozen=True)
class EventSpec:
    """What the platform knows about one event type."""

    type: str
    model: builtins.type[EventData]
    topic: str

    @property
    def dlq(self) -> str:
        """The dead-letter topic for this type."""
        return topics.dlq_for(self.topic)

    @property
    def version(self) -> int:
        """The current schema version."""
        return self.model.schema_version

    @property
    def dataschema(self) -> str:
        """The CloudEvents dataschema URI of the current version."""
        return SCHEMA_URN.format(type=self.type, version=self.version)

    @property
    def description(self) -> str:
        """The model's docstring."""
        return (self.model.__doc__ or "").strip()


class Registry:
    """Event types, their models and topics, and the upcasters between schema versions."""

    def __init__(self, models: Iterable[type[EventData]]) -> None:
        self._specs: dict[str, EventSpec] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for model in models:
            spec = EventSpec(model.event_type, model, topics.topic_for(model.event_type))
            if spec.type in self._specs:
                raise ValueError(f"event type {spec.type} registered twice")
            self._specs[spec.type] = spec

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(self._specs.values())

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._specs

    def spec(self, event_type: str) -> EventSpec:
        """The spec of a type, or UnknownEventType."""
        try:
            return self._specs[event_type]
        except KeyError:
            raise UnknownEventType(f"unknown event type {event_type!r}") from None

    def spec_for_topic(self, topic: str) -> EventSpec:
        """The spec of the events on a topic or on its dead-letter topic."""
        base = topic.removesuffix(topics.DLQ_SUFFIX)
        for spec in self._specs.values():
            if spec.topic == base:
                return spec
        raise UnknownEventType(f"no event type is carried on topic {topic!r}")

    def topics(self, *, with_dlq: bool = False) -> list[str]:
        """Every topic, optionally with the dead-letter topics."""
        names = [spec.topic for spec in self]
        if with_dlq:
            names += [spec.dlq for spec in self]
        return names

    def register_upcaster(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Teach the registry to turn version N data of a type into version N+1."""
        self._upcasters[(event_type, from_version)] = upcaster

    def parse(self, event_type: str, version: int, data: bytes | dict[str, Any]) -> EventData:
        """Validate event data of any known version into the current model.

        Strictly and as JSON, whatever the data came as: what the type's published JSON
        Schema accepts, nothing more (no `"yes"` for a boolean, no stripped strings).
        """
        spec = self.spec(event_type)
        if version > spec.version:
            raise InvalidEvent(
                f"{event_type} v{version} is newer than this consumer knows (v{spec.version})"
            )
        try:
            if version == spec.version:
                document = data if isinstance(data, bytes) else to_json(data)
                return spec.model.model_validate_json(document, strict=True)
            raw = _as_dict(data)
            for step in range(version, spec.version):
                upcaster = self._upcasters.get((event_type, step))
                if upcaster is None:
                    raise InvalidEvent(f"{event_type} v{step} cannot be upcast: no upcaster")
                raw = upcaster(raw)
            return spec.model.model_validate_json(to_json(raw), strict=True)
        except ValidationError as error:
            raise InvalidEvent(
                f"{event_type} data is invalid: {describe_validation_error(error)}"
            ) from None


def _as_dict(data: bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    import json

    try:
        decoded = json.loads(data)
    except ValueError as error:
        raise InvalidEvent(f"event data is not JSON: {error}") from None
    if not isinstance(decoded, dict):
        raise InvalidEvent("event data must be a JSON object")
    return decoded


def parse_dataschema(dataschema: str) -> tuple[str, int]:
    """(type, version) from a dataschema URN."""
    prefix = "urn:accord:events:"
    if not dataschema.startswith(prefix) or ":v" not in dataschema:
        raise InvalidEvent(f"dataschema {dataschema!r} is not an Accord event schema")
    event_type, _, version = dataschema[len(prefix) :].rpartition(":v")
    if not (version.isascii() and version.isdecimal()):
        raise InvalidEvent(f"dataschema {dataschema!r} has no version number")
    return event_type, int(version)


REGISTRY = Registry(CATALOGUE)
"""The platform's registry."""
