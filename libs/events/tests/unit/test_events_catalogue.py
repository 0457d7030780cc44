"""The catalogue: every event model is frozen, strict, documented and on its own topic.

Parametrised over REGISTRY, so a new event type is covered as soon as it is registered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from accord.events import REGISTRY, EventData, topics
from accord.events.catalogue import CATALOGUE
from accord.events.catalogue.base import ValueObject, fields_doc
from accord.events.schemas import event_schema

REQUIRED_TYPES = {
    "user.created",
    "user.updated",
    "user.deactivated",
    "user.reactivated",
    "user.deleted",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.members_changed",
    "access.requested",
    "access.decided",
    "access.granted",
    "access.revoked",
    "provision.requested",
    "account.provisioned",
    "account.provision_failed",
    "saga.started",
    "saga.completed",
    "saga.failed",
    "audit.recorded",
}

SPECS = list(REGISTRY)
SPEC_IDS = [spec.type for spec in SPECS]


def _nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model reachable from a model's fields (Resource, Profile, ...), itself included."""
    found: set[type[BaseModel]] = set()
    todo: list[Any] = [model]
    while todo:
        item = todo.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in found:
                continue
            found.add(item)
            for info in item.model_fields.values():
                todo.append(info.annotation)
        for arg in getattr(item, "__args__", ()) or ():
            todo.append(arg)
        for meta in getattr(item, "__metadata__", ()) or ():
            todo.append(meta)
        origin = getattr(item, "__origin__", None)
        if origin is not None:
            todo.append(origin)
    return found


def test_registry_holds_every_required_type() -> None:
    missing = REQUIRED_TYPES - {spec.type for spec in REGISTRY}
    assert not missing, f"event types missing from the registry: {sorted(missing)}"


def test_registry_is_the_catalogue() -> None:
    assert [spec.model for spec in REGISTRY] == list(CATALOGUE)


def test_every_topic_constant_is_a_registered_type() -> None:
    constants = {
        value
        for name, value in vars(topics).items()
        if name.isupper() and isinstance(value, str) and name != "DLQ_SUFFIX"
    }
    assert constants == {spec.type for spec in REGISTRY}


def test_every_registered_type_has_a_sample(samples: Callable[[str], dict[str, Any]]) -> None:
    for spec in REGISTRY:
        samples(spec.type)  # fails with a pointer to conftest.py when one is missing


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
class TestEveryEventModel:
    def test_type_is_well_formed(self, spec: Any) -> None:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", spec.type)
        assert spec.model.event_type == spec.type

    def test_topic_is_the_type_and_dlq_is_topic_dot_dlq(self, spec: Any) -> None:
        assert spec.topic == spec.type
        assert topics.topic_for(spec.type) == spec.type
        assert spec.dlq == f"{spec.topic}.dlq"
        assert topics.is_dlq(spec.dlq)
        assert not topics.is_dlq(spec.topic)
        assert REGISTRY.spec_for_topic(spec.topic) is spec
        assert REGISTRY.spec_for_topic(spec.dlq) is spec

    def test_is_frozen_and_forbids_extra_fields_in_config(self, spec: Any) -> None:
        for model in _nested_models(spec.model):
            assert model.model_config.get("frozen") is True, f"{model.__name__} is not frozen"
            assert model.model_config.get("extra") == "forbid", f"{model.__name__} allows extra"

    def test_instances_cannot_be_changed(
        self, spec: Any, make_event: Callable[[str], EventData]
    ) -> None:
        event = make_event(spec.type)
        with pytest.raises(ValidationError, match="frozen"):
            setattr(event, spec.model.subject_field, "someone-else")

    def test_extra_fields_are_refused(
        self, spec: Any, samples: Callable[[str], dict[str, Any]]
    ) -> None:
        data = samples(spec.type)
        data["unexpected_field"] = "x"
        with pytest.raises(ValidationError, match="unexpected_field"):
            spec.model.model_validate(data)

    def test_model_has_a_docstring(self, spec: Any) -> None:
        assert spec.description, f"{spec.model.__name__} needs a docstring"
        # The docstring must be the model's own, not inherited from a base class.
        assert "__doc__" in vars(spec.model)

    def test_every_field_is_documented(self, spec: Any) -> None:
        for model in _nested_models(spec.model):
            undocumented = [name for name, doc in fields_doc(model).items() if not doc]
            assert not undocumented, f"{model.__name__}: fields without a docstring"

    def test_every_schema_property_has_a_description(self, spec: Any) -> None:
        schema = event_schema(spec)
        objects = [schema, *schema.get("$defs", {}).values()]
        for obj in objects:
            for name, prop in obj.get("properties", {}).items():
                assert prop.get("description"), f"{obj.get('title')}.{name} has no description"

    def test_subject_field_is_a_required_field(self, spec: Any) -> None:
        field = spec.model.model_fields.get(spec.model.subject_field)
        assert field is not None, f"subject_field {spec.model.subject_field!r} is not a field"
        assert field.is_required()

    def test_event_subject_is_the_subject_fields_value(
        self, spec: Any, samples: Callable[[str], dict[str, Any]]
    ) -> None:
        data = samples(spec.type)
        event = spec.model.model_validate(data)
        assert event.event_subject() == data[spec.model.subject_field]

    def test_schema_version_is_a_positive_int(self, spec: Any) -> None:
        assert isinstance(spec.version, int)
        assert spec.version >= 1
        assert spec.dataschema == f"urn:accord:events:{spec.type}:v{spec.version}"

    def test_sample_round_trips_through_json(self, spec: Any, make_event: Any) -> None:
        event = make_event(spec.type)
        assert spec.model.model_validate_json(event.model_dump_json()) == event


def test_identity_events_are_the_user_and_group_events() -> None:
    identity = {spec.type for spec in REGISTRY if spec.model.identity_event}
    assert identity == {t for t in REQUIRED_TYPES if t.startswith(("user.", "group."))}


def test_value_objects_are_frozen_and_strict() -> None:
    assert ValueObject.model_config["frozen"] is True
    assert ValueObject.model_config["extra"] == "forbid"


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("user.created", "user_id", "has space"),
        ("user.created", "user_id", ""),
        ("user.created", "user_id", "x" * 129),
        ("user.created", "email", "not-an-email"),
        ("user.created", "user_name", ""),
        ("access.requested", "duration_seconds", 0),
        ("access.decided", "decision", "maybe"),
        ("provision.requested", "operation", "explode"),
        ("saga.completed", "duration_ms", -1),
        ("audit.recorded", "record_id", 0),
        ("audit.recorded", "outcome", "meh"),
        ("workflow.run_started", "category", "intern"),
        ("workflow.run_started", "trigger", ""),
        ("workflow.task_waiting", "waiting_for", "forever"),
        ("workflow.task_waiting", "until", "2026-03-02 08:00"),
        ("workflow.task_completed", "kind", "Send-Email"),
        ("workflow.task_completed", "output_keys", ["has space"]),
        ("workflow.task_completed", "output_keys", [f"k{n}" for n in range(65)]),
        ("workflow.task_completed", "output_keys", {"ticket_id": "T-1"}),
        ("approval.requested", "approvers", []),
        ("approval.requested", "approvers", ["boss"]),
        ("approval.requested", "approvers", ["group:"]),
        ("approval.requested", "approvers", [f"user:u{n}" for n in range(17)]),
        ("approval.requested", "expires_at", "2026-03-05 08:00"),
        ("approval.decided", "approved", "maybe"),
        ("approval.decided", "decided_by", ""),
        ("session.revoke_requested", "request_id", "has space"),
        ("session.revoke_requested", "reason", ""),
    ],
)
def test_constraints_are_enforced(
    samples: Callable[[str], dict[str, Any]], event_type: str, field: str, value: Any
) -> None:
    data = samples(event_type)
    data[field] = value
    with pytest.raises(ValidationError) as caught:
        REGISTRY.spec(event_type).model.model_validate(data)
    assert field in {str(error["loc"][0]) for error in caught.value.errors()}


def test_user_snapshot_profile_drops_the_event_fields(make_event: Any) -> None:
    event = make_event("user.created")
    profile = event.profile()
    assert type(profile).__name__ == "Profile"
    assert "user_id" not in type(profile).model_fields
    assert profile.user_name == event.user_name
    assert profile.attributes == event.attributes
