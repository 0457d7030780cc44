"""The registry: type -> model -> topic, and upcasting of old schema versions.

Upcasting is tested on fresh Registry instances built from test-only models, so the platform
REGISTRY is never touched.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from accord.events import (
    REGISTRY,
    EventData,
    InvalidEvent,
    Registry,
    UnknownEventType,
    UserCreated,
    from_kafka,
    new_event,
    to_kafka,
)
from accord.events.catalogue.base import Identifier, ShortText
from accord.events.registry import parse_dataschema

WIDGET = "test.widget_renamed"


class WidgetRenamed(EventData):
    """Test-only event, schema v2: v1 called `display_name` `name`."""

    event_type: ClassVar[str] = WIDGET
    schema_version: ClassVar[int] = 2
    subject_field: ClassVar[str] = "widget_id"

    widget_id: Identifier
    """The widget."""
    display_name: ShortText
    """Its new name (v1: `name`)."""


class WidgetRenamedV3(EventData):
    """Test-only event, schema v3: v2 plus a mandatory `renamed_by`."""

    event_type: ClassVar[str] = WIDGET
    schema_version: ClassVar[int] = 3
    subject_field: ClassVar[str] = "widget_id"

    widget_id: Identifier
    """The widget."""
    display_name: ShortText
    """Its new name."""
    renamed_by: Identifier
    """Who renamed it (v1 and v2 did not say: `unknown`)."""


def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    upcast = {key: value for key, value in data.items() if key != "name"}
    upcast["display_name"] = data["name"]
    return upcast


def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "renamed_by": "unknown"}


V1_DATA = {"widget_id": "w-1", "name": "Knob"}


@pytest.fixture
def registry() -> Registry:
    fresh = Registry([WidgetRenamed])
    fresh.register_upcaster(WIDGET, 1, v1_to_v2)
    return fresh


# --- lookups -------------------------------------------------------------------------------


def test_spec_of_an_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownEventType, match=r"unknown event type 'user\.exploded'"):
        REGISTRY.spec("user.exploded")
    assert issubclass(UnknownEventType, InvalidEvent)
    assert "user.exploded" not in REGISTRY
    assert "user.created" in REGISTRY


def test_spec_for_an_unknown_topic_is_refused() -> None:
    with pytest.raises(UnknownEventType, match="no event type is carried on topic"):
        REGISTRY.spec_for_topic("user.exploded.dlq")


def test_topics_lists_every_topic_and_optionally_the_dlqs() -> None:
    types = [spec.type for spec in REGISTRY]
    assert REGISTRY.topics() == types
    assert REGISTRY.topics(with_dlq=True) == types + [f"{t}.dlq" for t in types]


def test_a_type_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        Registry([UserCreated, UserCreated])


def test_spec_describes_a_custom_model() -> None:
    spec = Registry([WidgetRenamed]).spec(WIDGET)
    assert spec.model is WidgetRenamed
    assert (spec.topic, spec.dlq, spec.version) == (WIDGET, f"{WIDGET}.dlq", 2)
    assert spec.dataschema == f"urn:accord:events:{WIDGET}:v2"
    assert spec.description.startswith("Test-only event")


@pytest.mark.parametrize(
    ("urn", "expected"),
    [
        ("urn:accord:events:user.created:v1", ("user.created", 1)),
        ("urn:accord:events:account.provision_failed:v12", ("account.provision_failed", 12)),
    ],
)
def test_parse_dataschema(urn: str, expected: tuple[str, int]) -> None:
    assert parse_dataschema(urn) == expected


@pytest.mark.parametrize(
    "urn",
    [
        "urn:other:user.created:v1",
        "urn:accord:events:user.created",
        "urn:accord:events:user.created:v",
        "urn:accord:events:user.created:v-1",
        "urn:accord:events:user.created:v1.0",
    ],
)
def test_parse_dataschema_refuses_foreign_urns(urn: str) -> None:
    with pytest.raises(InvalidEvent, match="dataschema"):
        parse_dataschema(urn)


# --- parse and upcast ----------------------------------------------------------------------


def test_current_version_is_validated_from_dict_and_bytes(registry: Registry) -> None:
    data = {"widget_id": "w-1", "display_name": "Knob"}
    expected = WidgetRenamed(widget_id="w-1", display_name="Knob")
    assert registry.parse(WIDGET, 2, data) == expected
    assert registry.parse(WIDGET, 2, json.dumps(data).encode()) == expected


def test_v1_dict_is_upcast(registry: Registry) -> None:
    parsed = registry.parse(WIDGET, 1, dict(V1_DATA))
    assert parsed == WidgetRenamed(widget_id="w-1", display_name="Knob")


def test_v1_bytes_are_upcast(registry: Registry) -> None:
    parsed = registry.parse(WIDGET, 1, json.dumps(V1_DATA).encode())
    assert parsed == WidgetRenamed(widget_id="w-1", display_name="Knob")


def test_upcasters_are_chained_in_order() -> None:
    registry = Registry([WidgetRenamedV3])
    registry.register_upcaster(WIDGET, 2, v2_to_v3)
    registry.register_upcaster(WIDGET, 1, v1_to_v2)
    expected = WidgetRenamedV3(widget_id="w-1", display_name="Knob", renamed_by="unknown")
    assert registry.parse(WIDGET, 1, dict(V1_DATA)) == expected
    assert registry.parse(WIDGET, 2, {"widget_id": "w-1", "display_name": "Knob"}) == expected


def test_a_newer_version_than_known_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidEvent, match=r"v3 is newer than this consumer knows \(v2\)"):
        registry.parse(WIDGET, 3, {"widget_id": "w-1", "display_name": "Knob"})


def test_a_missing_upcaster_is_refused() -> None:
    registry = Registry([WidgetRenamed])
    with pytest.raises(InvalidEvent, match="v1 cannot be upcast: no upcaster"):
        registry.parse(WIDGET, 1, dict(V1_DATA))


def test_a_gap_in_the_upcaster_chain_is_refused() -> None:
    registry = Registry([WidgetRenamedV3])
    registry.register_upcaster(WIDGET, 1, v1_to_v2)
    with pytest.raises(InvalidEvent, match="v2 cannot be upcast"):
        registry.parse(WIDGET, 1, dict(V1_DATA))


def test_upcast_data_is_still_validated(registry: Registry) -> None:
    with pytest.raises(InvalidEvent, match="display_name"):
        registry.parse(WIDGET, 1, {"widget_id": "w-1", "name": ""})


@pytest.mark.parametrize(
    ("raw", "message"), [(b"{nope", "not JSON"), (b"[1]", "must be a JSON object")]
)
def test_old_version_bytes_must_be_a_json_object(
    registry: Registry, raw: bytes, message: str
) -> None:
    with pytest.raises(InvalidEvent, match=message):
        registry.parse(WIDGET, 1, raw)


def test_upcasters_are_per_registry(registry: Registry) -> None:
    other = Registry([WidgetRenamed])
    with pytest.raises(InvalidEvent, match="no upcaster"):
        other.parse(WIDGET, 1, dict(V1_DATA))
    assert WIDGET not in REGISTRY


def test_from_kafka_upcasts_an_old_record(registry: Registry) -> None:
    current = new_event(
        WidgetRenamed(widget_id="w-1", display_name="Knob"), source="urn:test", registry=registry
    )
    record = to_kafka(current, registry=registry)
    headers = [
        (name, b"urn:accord:events:test.widget_renamed:v1" if name == "ce_dataschema" else value)
        for name, value in record.headers
    ]
    decoded = from_kafka(
        record.topic, record.key, json.dumps(V1_DATA).encode(), headers, registry=registry
    )
    assert decoded.data == current.data
    assert decoded.dataschema == "urn:accord:events:test.widget_renamed:v2"
    assert decoded.id == current.id


def test_from_kafka_with_the_platform_registry_does_not_know_test_types(
    registry: Registry,
) -> None:
    envelope = new_event(
        WidgetRenamed(widget_id="w-1", display_name="Knob"), source="urn:test", registry=registry
    )
    record = to_kafka(envelope, registry=registry)
    with pytest.raises(UnknownEventType):
        from_kafka(record.topic, record.key, record.value, record.headers)


def test_parse_dataschema_refuses_a_superscript_version() -> None:
    with pytest.raises(InvalidEvent, match="dataschema"):
        parse_dataschema("urn:accord:events:user.created:v\u00b2")
