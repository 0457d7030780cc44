"""Recording batches on the in-memory log: events, dead letters, redaction, redeliveries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from accord.auditor.domain.chain import GENESIS, Verification
from accord.auditor.domain.chaining import EMPTY, ChainState, chain, fresh
from accord.auditor.domain.normalise import REDACTED
from accord.auditor.fakes import FakeAuditLog, FakeRecord
from accord.auditor.fakes import audit_entry as entry
from accord.auditor.handlers import batch_route, record_batch
from accord.auditor.ports import RecordingPorts
from accord.events import (
    AccountProvisioned,
    AuditRecorded,
    Envelope,
    EventData,
    UserCreated,
    new_event,
    to_kafka,
)
from accord.runtime.routes import BatchItem, HandlerContext

SOURCE = "accord/auditor"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
RECORDED_AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def event(data: EventData | None = None, **kwargs: object) -> Envelope:
    data = data or UserCreated(user_id="e-1", user_name="ada", email="ada@example.com")
    if data.identity_event:
        kwargs.setdefault("sequence", 1)
    return new_event(data, source="accord/test", **kwargs)  # type: ignore[arg-type]


def consumed(envelope: Envelope, *, offset: int = 0) -> BatchItem:
    encoded = to_kafka(envelope)
    record = FakeRecord(encoded.topic, encoded.value, encoded.headers, encoded.key, 0, offset)
    return record, envelope


def dead_letter(
    value: bytes, *, offset: int = 7, headers: Sequence[tuple[str, bytes]] = ()
) -> BatchItem:
    return FakeRecord("user.created.dlq", value, headers, None, 2, offset), None


def ports(log: FakeAuditLog, redact: frozenset[str] = frozenset()) -> RecordingPorts:
    return RecordingPorts(log, SOURCE, redact, clock=lambda: RECORDED_AT)


def verified(log: FakeAuditLog) -> Verification:
    walk = Verification()
    walk.feed(log.rows())
    walk.against_head(log.head_id, log.head_hash)
    assert walk.first_break is None, walk.first_break
    return walk


async def test_events_are_recorded_chained_and_announced() -> None:
    log = FakeAuditLog()
    first = event(correlation_id="corr-1").model_copy(update={"traceparent": TRACEPARENT})
    second = event(
        AccountProvisioned(
            user_id="e-1",
            target="scim-demo",
            saga_id="s-1",
            step_id="s-1:scim-demo",
            operation="create",
            account_id="a-1",
        ),
        causation=first,
    )

    announced = await record_batch([consumed(first), consumed(second, offset=1)], ports(log))

    assert [r.record_id for r in log.records] == [1, 2]
    assert [r.entry.source_event_id for r in log.records] == [first.id, second.id]
    assert log.records[0].prev_hash == GENESIS
    assert log.records[1].prev_hash == log.records[0].hash
    assert (log.head_id, log.head_hash) == (2, log.records[1].hash)
    assert verified(log).checked == 2
    assert log.records[0].fields["recorded_at"] == RECORDED_AT
    assert log.records[0].entry.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert log.records[1].entry.outcome == "success"
    assert log.records[1].entry.target == "scim-demo"

    assert [a.type for a in announced] == ["audit.recorded", "audit.recorded"]
    assert all(a.source == SOURCE for a in announced)
    data = [a.data for a in announced]
    assert all(isinstance(d, AuditRecorded) for d in data)
    first_data, second_data = data
    assert isinstance(first_data, AuditRecorded)
    assert isinstance(second_data, AuditRecorded)
    assert (first_data.record_id, second_data.record_id) == (1, 2)
    assert first_data.source_event_id == first.id
    assert first_data.event_type_recorded == "user.created"
    assert second_data.target == "scim-demo"
    # Each announcement is caused by the event it records, in that event's flow.
    assert announced[0].causationid == first.id
    assert announced[0].correlationid == "corr-1"
    assert announced[1].causationid == second.id
    assert announced[1].correlationid == first.correlationid


async def test_a_dead_letter_is_recorded_as_a_failure_from_its_headers() -> None:
    log = FakeAuditLog()
    headers = [
        ("ce_id", b"evt-broken"),
        ("ce_type", b"user.created"),
        ("ce_source", b"accord/hr"),
        ("ce_correlationid", b"corr-9"),
        ("accord-error", b"no such schema"),
        ("accord-error-type", b"invalid-event"),
    ]

    announced = await record_batch(
        [dead_letter(b'{"user_id": "e-1"}', headers=headers)], ports(log)
    )

    (stored,) = log.records
    assert stored.entry.source_topic == "user.created.dlq"
    assert stored.entry.source_event_id == "evt-broken"
    assert stored.entry.outcome == "failure"
    assert stored.entry.actor == "accord/hr"
    assert stored.entry.payload["error"] == "no such schema"
    assert stored.entry.payload["data"] == {"user_id": "e-1"}
    (recorded,) = announced
    assert isinstance(recorded.data, AuditRecorded)
    assert recorded.data.outcome == "failure"
    assert recorded.causationid is None  # nothing decodable caused it
    assert recorded.correlationid == "corr-9"
    verified(log)


async def test_a_dead_letter_without_an_id_is_known_by_its_place() -> None:
    log = FakeAuditLog()
    batch = [dead_letter(b"\x00not json", offset=7), dead_letter(b"\x00not json", offset=8)]

    await record_batch(batch, ports(log))
    await record_batch(batch, ports(log))  # redelivered

    assert [r.entry.source_event_id for r in log.records] == [
        "user.created.dlq:2:7",
        "user.created.dlq:2:8",
    ]
    # NUL, which PostgreSQL text refuses, is stored as U+FFFD (and hashed so).
    assert "\\u0000" not in log.records[0].payload
    assert "\\ufffd" in log.records[0].payload
    verified(log)


async def test_redacted_fields_never_reach_the_log_or_the_announcement() -> None:
    log = FakeAuditLog()
    headers = [("ce_id", b"evt-dl")]
    body = json.dumps({"user_id": "e-2", "email": "bob@example.com"}).encode()

    announced = await record_batch(
        [consumed(event()), dead_letter(body, headers=headers)],
        ports(log, frozenset({"email"})),
    )

    assert log.records[0].entry.payload["email"] == REDACTED
    assert log.records[0].entry.payload["user_name"] == "ada"
    assert log.records[1].entry.payload["data"] == {"user_id": "e-2", "email": REDACTED}
    assert "example.com" not in "".join(r.payload for r in log.records)
    assert all("example.com" not in json.dumps(a.data.model_dump(mode="json")) for a in announced)


async def test_unparseable_dead_letters_keep_only_a_fingerprint_when_redacting() -> None:
    log = FakeAuditLog()
    await record_batch([dead_letter(b"email=bob@example.com")], ports(log, frozenset({"email"})))
    payload = log.records[0].entry.payload
    assert "raw" not in payload
    assert payload["size"] == len(b"email=bob@example.com")
    assert len(payload["raw_sha256"]) == 64


async def test_a_redelivered_batch_records_and_announces_nothing_twice() -> None:
    log = FakeAuditLog()
    one, two, three = event(), event(), event()

    first = await record_batch([consumed(one), consumed(two, offset=1)], ports(log))
    again = await record_batch(
        [consumed(two, offset=1), consumed(three, offset=2), consumed(three, offset=2)],
        ports(log),
    )
    repeated = await record_batch([consumed(one), consumed(two, offset=1)], ports(log))

    assert len(first) == 2
    assert [a.data.record_id for a in again if isinstance(a.data, AuditRecorded)] == [3]
    assert again[0].causationid == three.id
    assert repeated == []
    assert [r.entry.source_event_id for r in log.records] == [one.id, two.id, three.id]
    assert verified(log).checked == 3


async def test_the_same_event_on_another_topic_is_another_record() -> None:
    log = FakeAuditLog()
    original = event()
    encoded = to_kafka(original)
    from_dlq = FakeRecord("user.created.dlq", encoded.value, encoded.headers, encoded.key)

    await record_batch([consumed(original), (from_dlq, original)], ports(log))

    assert [(r.entry.source_topic, r.entry.outcome) for r in log.records] == [
        ("user.created", "info"),
        ("user.created.dlq", "failure"),
    ]


async def test_an_empty_batch_changes_nothing() -> None:
    log = FakeAuditLog()
    assert await record_batch([], ports(log)) == []
    assert (log.head_id, log.head_hash, log.records) == (0, GENESIS, [])


# --- the pure decision -------------------------------------------------------------------------


def test_chaining_continues_after_the_head_and_skips_what_the_log_holds() -> None:
    state = ChainState(41, "a" * 64, frozenset({("user.created", "evt-2")}))
    records = chain(state, [entry(1), entry(2), entry(3), entry(1)], lambda: RECORDED_AT)
    assert [(r.record_id, r.entry.source_event_id) for r in records] == [
        (42, "evt-1"),
        (43, "evt-3"),
    ]
    assert records[0].prev_hash == "a" * 64
    assert records[1].prev_hash == records[0].hash
    walk = Verification()
    walk.start_after(41, "a" * 64)
    walk.feed(
        {**r.fields, "payload": r.payload, "prev_hash": r.prev_hash, "hash": r.hash}
        for r in records
    )
    assert walk.first_break is None
    assert walk.checked == 2


def test_fresh_keeps_the_first_of_each_event_in_order() -> None:
    assert [e.source_event_id for e in fresh(EMPTY, [entry(2), entry(1), entry(2)])] == [
        "evt-2",
        "evt-1",
    ]


async def test_the_route_builds_the_ports_of_each_batch_from_its_context() -> None:
    log = FakeAuditLog()
    contexts: list[HandlerContext] = []

    def ports_of(ctx: HandlerContext) -> RecordingPorts:
        contexts.append(ctx)
        return RecordingPorts(log, ctx.source)

    handle = batch_route(ports_of)
    ctx = HandlerContext(source="accord/auditor-2", topic="user.created", conn=cast(Any, None))
    announced = await handle([consumed(event())], ctx)

    assert contexts == [ctx]
    assert [a.source for a in announced] == ["accord/auditor-2"]
    assert len(log.records) == 1
