"""JSON Schema and AsyncAPI export, and the drift check that keeps the checked-in files honest."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from accord.events import REGISTRY, EventData, Registry, to_kafka
from accord.events.catalogue.base import Identifier
from accord.events.schemas import (
    ASYNCAPI_FILE,
    asyncapi,
    decimal_at_most,
    drift,
    event_schema,
    render,
    schema_filename,
    write,
)

SPECS = list(REGISTRY)
SPEC_IDS = [spec.type for spec in SPECS]


# --- the CI drift check --------------------------------------------------------------------


def test_ci_checked_in_schemas_and_asyncapi_match_the_models(events_folder: Path) -> None:
    """CI drift test: libs/events/schemas/*.json and libs/events/asyncapi.json are generated."""
    problems = drift(events_folder)
    assert not problems, (
        "the checked-in event schemas drifted from the models in accord.events.catalogue: "
        + ", ".join(problems)
        + ". Run `make schemas` (or `uv run accord schemas libs/events`) and commit the result."
    )


# --- drift detection -----------------------------------------------------------------------


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    written = write(tmp_path)
    assert sorted(written) == sorted(render())
    return tmp_path


def test_freshly_written_folder_has_no_drift(generated: Path) -> None:
    assert drift(generated) == []
    assert write(generated) == [], "a second write must change nothing"


def test_write_rewrites_only_what_changed(generated: Path) -> None:
    (generated / "schemas" / "user.created.v1.json").write_text("{}\n")
    (generated / ASYNCAPI_FILE).unlink()
    assert sorted(write(generated)) == [ASYNCAPI_FILE, "schemas/user.created.v1.json"]
    assert drift(generated) == []


def test_drift_detects_a_stale_schema(generated: Path) -> None:
    path = generated / "schemas" / "user.created.v1.json"
    schema = json.loads(path.read_text())
    schema["description"] = "edited by hand"
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    assert drift(generated) == ["stale: schemas/user.created.v1.json"]


def test_drift_detects_a_whitespace_only_change(generated: Path) -> None:
    path = generated / "schemas" / "saga.failed.v1.json"
    path.write_text(path.read_text().rstrip("\n"))
    assert drift(generated) == ["stale: schemas/saga.failed.v1.json"]


def test_drift_detects_a_stale_asyncapi(generated: Path) -> None:
    path = generated / ASYNCAPI_FILE
    document = json.loads(path.read_text())
    del document["channels"]["userCreatedDlq"]
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    assert drift(generated) == [f"stale: {ASYNCAPI_FILE}"]


def test_drift_detects_a_missing_schema(generated: Path) -> None:
    (generated / "schemas" / "access.revoked.v1.json").unlink()
    assert drift(generated) == ["missing: schemas/access.revoked.v1.json"]


def test_drift_detects_a_missing_asyncapi(generated: Path) -> None:
    (generated / ASYNCAPI_FILE).unlink()
    assert drift(generated) == [f"missing: {ASYNCAPI_FILE}"]


def test_drift_detects_an_extra_schema(generated: Path) -> None:
    (generated / "schemas" / "user.teleported.v1.json").write_text("{}\n")
    assert drift(generated) == ["extra: schemas/user.teleported.v1.json"]


def test_drift_of_an_empty_folder_lists_every_file(tmp_path: Path) -> None:
    problems = drift(tmp_path)
    assert sorted(problems) == sorted(f"missing: {rel}" for rel in render())
    assert len(problems) == len(SPECS) + 1


def test_drift_reports_every_problem_at_once(generated: Path) -> None:
    (generated / "schemas" / "zzz.extra.v1.json").write_text("{}\n")
    (generated / "schemas" / "group.deleted.v1.json").unlink()
    (generated / ASYNCAPI_FILE).write_text("{}\n")
    assert drift(generated) == [
        "extra: schemas/zzz.extra.v1.json",
        "missing: schemas/group.deleted.v1.json",
        f"stale: {ASYNCAPI_FILE}",
    ]


class GadgetMovedV1(EventData):
    """Test-only event, schema v1."""

    event_type: ClassVar[str] = "test.gadget_moved"
    subject_field: ClassVar[str] = "gadget_id"

    gadget_id: Identifier
    """The gadget."""


class GadgetMovedV2(GadgetMovedV1):
    """Test-only event, schema v2."""

    schema_version: ClassVar[int] = 2

    shelf: Identifier
    """Where it is now."""


def test_write_converges_after_a_schema_version_bump(tmp_path: Path) -> None:
    write(tmp_path, Registry([GadgetMovedV1]))
    write(tmp_path, Registry([GadgetMovedV2]))
    assert drift(tmp_path, Registry([GadgetMovedV2])) == []


# --- JSON Schemas --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_json_schema_id_is_the_dataschema(spec: Any) -> None:
    schema = event_schema(spec)
    assert schema["$id"] == spec.dataschema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-accord-topic"] == spec.topic
    assert schema["x-accord-subject-field"] == spec.model.subject_field
    assert schema["x-accord-identity-event"] is spec.model.identity_event
    assert schema["additionalProperties"] is False
    assert schema["description"] == spec.description
    assert spec.model.subject_field in schema["required"]


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_checked_in_json_schema_id_is_the_dataschema(spec: Any, events_folder: Path) -> None:
    path = events_folder / "schemas" / schema_filename(spec)
    assert path.exists(), f"{path} is missing: run `make schemas`"
    assert json.loads(path.read_text())["$id"] == spec.dataschema


def test_schema_filenames_carry_type_and_version() -> None:
    spec = REGISTRY.spec("account.provision_failed")
    assert schema_filename(spec) == "account.provision_failed.v1.json"


def test_render_is_deterministic_json() -> None:
    first, second = render(), render()
    assert first == second
    for rel, text in first.items():
        assert text.endswith("\n")
        assert json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text, rel


# --- AsyncAPI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi()


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_asyncapi_version(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["defaultContentType"] == "application/json"
    assert document["info"]["title"]
    assert document["info"]["version"]


def test_asyncapi_has_a_channel_for_every_topic_and_dlq(document: dict[str, Any]) -> None:
    addresses = [channel["address"] for channel in document["channels"].values()]
    assert len(addresses) == len(set(addresses))
    assert set(addresses) == set(REGISTRY.topics(with_dlq=True))
    for spec in REGISTRY:
        assert spec.topic in addresses
        assert spec.dlq in addresses


def test_asyncapi_references_resolve(document: dict[str, Any]) -> None:
    for name, channel in document["channels"].items():
        for message in channel["messages"].values():
            assert _resolve(document, message["$ref"])["name"] in REGISTRY, name
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive")
        channel = _resolve(document, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            assert _resolve(document, message["$ref"]) in channel["messages"].values(), name
    for message in document["components"]["messages"].values():
        _resolve(document, message["headers"]["$ref"])


def test_asyncapi_messages_point_at_the_generated_schemas(document: dict[str, Any]) -> None:
    files = render()
    by_type = {m["name"]: m for m in document["components"]["messages"].values()}
    assert set(by_type) == {spec.type for spec in REGISTRY}
    for spec in REGISTRY:
        message = by_type[spec.type]
        payload = message["payload"]["$ref"]
        assert payload == f"./schemas/{schema_filename(spec)}"
        assert payload.removeprefix("./") in files
        assert message["title"] == spec.model.__name__
        assert message["summary"] == spec.description
        key = message["bindings"]["kafka"]["key"]
        assert (key["type"], key["minLength"]) == ("string", 1), "the key is required"


def test_asyncapi_headers_require_every_header_to_kafka_always_writes(
    document: dict[str, Any], make_envelope: Any
) -> None:
    headers = document["components"]["schemas"]["CloudEventsHeaders"]
    record = to_kafka(make_envelope("access.requested"))
    written = {name for name, _ in record.headers}
    assert set(headers["required"]) <= written
    assert written <= set(headers["properties"])


def test_asyncapi_headers_document_every_optional_header(
    document: dict[str, Any], make_envelope: Any
) -> None:
    envelope = make_envelope("user.updated", causation=make_envelope("access.requested"))
    envelope = envelope.model_copy(
        update={
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendor=value",
        }
    )
    written = {name for name, _ in to_kafka(envelope).headers}
    documented = set(document["components"]["schemas"]["CloudEventsHeaders"]["properties"])
    assert written - documented == set()


def test_asyncapi_operation_ids_are_unique_per_channel(document: dict[str, Any]) -> None:
    assert len(document["operations"]) == len(document["channels"])


def test_identity_event_messages_require_a_sequence(document: dict[str, Any]) -> None:
    for message in document["components"]["messages"].values():
        headers = _resolve(document, message["headers"]["$ref"])
        required = set(headers.get("required", []))
        for part in headers.get("allOf", []):
            required |= set(_resolve(document, part["$ref"]).get("required", []))
        identity_event = REGISTRY.spec(message["name"]).model.identity_event
        assert ("ce_sequence" in required) is identity_event, message["name"]


LIMIT = 2**63 - 1


@given(st.integers(min_value=0, max_value=2**70), st.integers(min_value=0, max_value=3))
@example(LIMIT, 0)
@example(LIMIT + 1, 0)
@example(LIMIT - 1, 0)
@example(10**18, 0)
@example(9 * 10**18 + 10**17, 0)
@example(0, 2)
def test_the_sequence_pattern_accepts_exactly_0_to_the_limit(number: int, zeros: int) -> None:
    pattern = re.compile(decimal_at_most(LIMIT))
    assert bool(pattern.fullmatch("0" * zeros + str(number))) is (number <= LIMIT)


@pytest.mark.parametrize("limit", [0, 5, 10, 100, 909, 1000])
def test_the_sequence_pattern_works_for_any_limit(limit: int) -> None:
    pattern = re.compile(decimal_at_most(limit))
    assert [n for n in range(2000) if pattern.fullmatch(str(n))] == list(range(limit + 1))
