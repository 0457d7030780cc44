"""The consume -> handle -> outbox path on the in-memory transport and storage: the real
ConsumerLoop, PartitionHandler and OutboxRelay, with no Kafka and no PostgreSQL
(accord.runtime.testing.InMemoryService)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from accord.events import Envelope, SagaCompleted, SagaFailed, new_event, to_kafka
from accord.runtime.consumer import IDLE_POLL_MS, Effect, EffectContext, GaveUp, HandlerContext
from accord.runtime.dlq import REPLAY_FOR_HEADER, RESOLVES_HEADER
from accord.runtime.errors import PermanentError, RetryableError
from accord.runtime.memory import MemoryBroker, MemoryConsumer
from accord.runtime.records import Record
from accord.runtime.routes import BatchItem, on, table
from accord.runtime.testing import InMemoryService

CONSUMED = "saga.completed"
EMITTED = "saga.failed"
GROUP = "accord-test"


def completed(subject: str) -> Envelope:
    data = SagaCompleted(
        saga_id=f"saga-{uuid.uuid4().hex[:8]}",
        saga_type="joiner",
        subject_id=subject,
        duration_ms=1,
    )
    return new_event(data, source="test/runtime")


def reply_to(envelope: Envelope, source: str) -> Envelope:
    data = SagaFailed(
        saga_id=f"reply-{envelope.id}", saga_type="joiner", subject_id=envelope.subject, reason="r"
    )
    return new_event(data, source=source, causation=envelope)


def header(record: Record, name: str) -> str | None:
    values = [v for k, v in record.headers if k == name]
    return values[-1].decode() if values else None


class Recorder:
    """Notes the events it handles and replies to each; raises for the ids in `fail`."""

    def __init__(self, *, fail: dict[str, BaseException] | None = None) -> None:
        self.calls: list[Envelope] = []
        self.fail = fail or {}

    async def __call__(self, envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        self.calls.append(envelope)
        if envelope.id in self.fail:
            raise self.fail[envelope.id]
        return [reply_to(envelope, ctx.source)]

    def count(self, envelope: Envelope) -> int:
        return sum(1 for e in self.calls if e.id == envelope.id)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def publish_all(service: InMemoryService, events: Sequence[Envelope], **kw: Any) -> None:
    for envelope in events:
        await service.publish(envelope, **kw)


async def test_events_are_handled_in_order_per_partition_and_replies_reach_their_topic() -> None:
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder})
    events = [completed(f"user-{i % 4}") for i in range(24)]
    await publish_all(service, events[:12])

    async with service:
        await publish_all(service, events[12:])
        await service.settle()

    for subject in {e.subject for e in events}:
        sent = [e.id for e in events if e.subject == subject]
        assert [e.id for e in recorder.calls if e.subject == subject] == sent
    replies = service.events(EMITTED)
    assert sorted(str(r.causationid) for r in replies) == sorted(e.id for e in events)
    causes = {e.id: e for e in events}
    assert all(r.correlationid == causes[str(r.causationid)].correlationid for r in replies)
    assert service.storage.outbox == []
    assert service.broker.lag(GROUP, [CONSUMED]) == 0


async def test_records_fetched_together_commit_in_one_transaction_in_order() -> None:
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder})
    # One subject: the replies share a key, so their partition keeps their order.
    events = [completed("user-1") for _ in range(10)]
    await publish_all(service, events, partition=0)

    async with service:
        await service.settle()

    assert service.storage.commits == 1
    assert [e.id for e in recorder.calls] == [e.id for e in events]
    assert [r.causationid for r in service.events(EMITTED)] == [e.id for e in events]
    assert service.broker.committed(GROUP, TopicPartition(CONSUMED, 0)) == 10


async def test_an_event_twice_in_one_group_is_handled_once_beside_an_event_seen_before() -> None:
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder})
    seen, twice, fresh = (completed("user-1") for _ in range(3))

    async with service:
        await service.publish(seen, partition=0)
        await service.settle()
    # One group claims its events in one statement: the copy of `twice` in the same group
    # and the event an earlier group handled are duplicates; the rest is handled.
    await publish_all(service, [seen, twice, twice, fresh], partition=0)
    async with service:
        await service.settle()
        stats = service.stats

    assert [e.id for e in recorder.calls] == [seen.id, twice.id, fresh.id]
    assert (stats.handled, stats.duplicates) == (2, 2)
    assert [r.causationid for r in service.events(EMITTED)] == [seen.id, twice.id, fresh.id]


async def test_a_poison_record_in_a_group_is_dead_lettered_alone_with_its_reason() -> None:
    events = [completed(f"user-{i}") for i in range(5)]
    poison = events[2]
    recorder = Recorder(fail={poison.id: ValueError("no such column")})
    service = InMemoryService({CONSUMED: recorder}, max_attempts=2)
    await publish_all(service, events, partition=0)

    async with service:
        await service.settle()
        stats = service.stats

    [letter] = service.dead_letters(CONSUMED)
    assert header(letter, "ce_id") == poison.id
    assert header(letter, "accord-error") == "handler failed 2 times: ValueError: no such column"
    assert header(letter, "accord-error-type") == "handler-error"
    assert header(letter, "accord-consumer") == GROUP
    assert header(letter, "accord-original-offset") == "2"
    # The group's attempt (rolled back), then one by one: the poison twice in all.
    assert recorder.count(poison) == 2
    assert [recorder.count(e) for e in events if e is not poison] == [2, 2, 1, 1]
    replies = sorted(str(r.causationid) for r in service.events(EMITTED))
    assert replies == sorted(e.id for e in events if e is not poison)
    assert {(GROUP, CONSUMED, e.id) for e in events} - service.storage.inbox == {
        (GROUP, CONSUMED, poison.id)
    }
    assert (stats.handled, stats.dead_lettered) == (4, 1)


async def test_the_same_event_twice_is_handled_once_and_dropped_by_the_inbox() -> None:
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder})
    envelope = completed("user-1")

    async with service:
        await service.publish(envelope)
        await service.settle()
        await service.publish(envelope)
        await service.settle()
        stats = service.stats

    assert recorder.count(envelope) == 1
    assert len(service.events(EMITTED)) == 1
    assert (stats.handled, stats.duplicates) == (1, 1)


async def test_a_failing_handler_leaves_no_inbox_row_and_no_outbox_row() -> None:
    envelope = completed("user-1")
    emitted_then_failed: list[Envelope] = []

    async def handler(event: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        emitted_then_failed.append(reply_to(event, ctx.source))
        raise PermanentError("refused by the target")

    service = InMemoryService({CONSUMED: handler})
    async with service:
        await service.publish(envelope)
        await service.settle()

    assert service.storage.inbox == set()
    assert service.events(EMITTED) == []
    [letter] = service.dead_letters(CONSUMED)
    assert header(letter, "accord-error") == "refused by the target"
    assert header(letter, "accord-error-type") == "PermanentError"
    assert len(emitted_then_failed) == 1  # a permanent error is not retried


async def test_an_effect_that_gives_up_is_dead_lettered_and_its_events_emitted() -> None:
    calls: list[str] = []

    async def call_target(envelope: Envelope, ctx: EffectContext) -> GaveUp | list[Envelope]:
        calls.append(envelope.id)
        return GaveUp([reply_to(envelope, ctx.source)], "target down", "target-unavailable")

    service = InMemoryService({CONSUMED: Effect(call_target)})
    envelope = completed("user-1")
    async with service:
        metadata = await service.publish(envelope)
        await service.settle()

    [letter] = service.dead_letters(CONSUMED)
    assert header(letter, "ce_id") == envelope.id
    assert header(letter, "accord-error") == "target down"
    assert header(letter, "accord-error-type") == "target-unavailable"
    assert [r.causationid for r in service.events(EMITTED)] == [envelope.id]
    assert calls == [envelope.id]
    # Claimed under its position, so a replay of the dead letter runs the effect again.
    position = f"{envelope.id}@{metadata.partition}:{metadata.offset}"
    assert service.storage.inbox == {(GROUP, CONSUMED, position)}


async def test_an_effect_runs_outside_the_transaction_and_its_record_joins_the_commit() -> None:
    order: list[str] = []

    async def call_target(envelope: Envelope, ctx: EffectContext) -> list[Envelope]:
        order.append("effect")
        assert not hasattr(ctx, "conn")
        return []

    async def record(envelope: Envelope, ctx: HandlerContext) -> list[Envelope]:
        order.append("record")
        return [reply_to(envelope, ctx.source)]

    service = InMemoryService({CONSUMED: Effect(call_target, record=record)})
    envelope = completed("user-1")
    async with service:
        await service.publish(envelope)
        await service.publish(envelope)
        await service.settle()

    assert order == ["effect", "record"]
    assert [r.causationid for r in service.events(EMITTED)] == [envelope.id]
    assert service.storage.inbox == {(GROUP, CONSUMED, envelope.id)}


@pytest.mark.parametrize(
    "error", [RetryableError("target busy"), ConnectionRefusedError("db down")], ids=type
)
async def test_infrastructure_errors_are_retried_uncounted_and_never_dead_lettered(
    error: BaseException,
) -> None:
    envelope = completed("user-1")
    attempts: list[str] = []

    async def handler(event: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        attempts.append(event.id)
        if len(attempts) <= 2:
            raise error
        return [reply_to(event, ctx.source)]

    # One attempt allowed: a single counted failure would dead-letter the event.
    service = InMemoryService({CONSUMED: handler}, max_attempts=1)
    async with service:
        await service.publish(envelope)
        await service.settle()
        stats = service.stats

    assert service.dead_letters(CONSUMED) == []
    assert len(attempts) == 3
    assert (stats.handled, stats.retries, stats.dead_lettered) == (1, 2, 0)
    assert [r.causationid for r in service.events(EMITTED)] == [envelope.id]


async def test_our_database_going_away_is_waited_out() -> None:
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder}, max_attempts=1)
    service.storage.fail(ConnectionRefusedError("db down"), ConnectionResetError("again"))
    envelope = completed("user-1")

    async with service:
        await service.publish(envelope)
        await service.settle()
        stats = service.stats

    assert service.storage.failures == []
    assert service.dead_letters(CONSUMED) == []
    assert recorder.count(envelope) == 1
    assert (stats.handled, stats.retries) == (1, 2)


async def test_a_dead_letter_that_is_not_acknowledged_is_sent_again() -> None:
    envelope = completed("user-1")
    service = InMemoryService({CONSUMED: Recorder(fail={envelope.id: PermanentError("bad")})})
    await service.publish(envelope)
    service.producer.fail_sends(KafkaError("not acknowledged"))

    async with service:
        await service.settle()

    assert [header(r, "ce_id") for r in service.dead_letters(CONSUMED)] == [envelope.id]
    assert service.broker.lag(GROUP, [CONSUMED]) == 0


async def test_a_contract_violation_is_dead_lettered_and_the_loop_goes_on() -> None:
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder})
    good = completed("user-1")

    async with service:
        await service.producer.send_and_wait(CONSUMED, value=b"{not json", key=b"k", partition=0)
        await service.publish(good, partition=0)
        await service.settle()

    [letter] = service.dead_letters(CONSUMED)
    assert letter.value == b"{not json"
    assert header(letter, "accord-error-type") == "invalid-event"
    assert [e.id for e in recorder.calls] == [good.id]


async def test_stopping_mid_batch_commits_only_what_was_handled_and_restart_goes_on() -> None:
    events = [completed("user-1") for _ in range(6)]
    reached, release = asyncio.Event(), asyncio.Event()
    recorder = Recorder()

    async def slow_third(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if envelope.id == events[2].id and not release.is_set():
            reached.set()
            await release.wait()
        return await recorder(envelope, ctx)

    service = InMemoryService({CONSUMED: slow_third})
    await publish_all(service, events, partition=0)
    await service.start()
    await asyncio.wait_for(reached.wait(), 5)
    assert service.loop is not None
    service.loop.stop()
    release.set()
    await service.stop()

    tp = TopicPartition(CONSUMED, 0)
    assert [e.id for e in recorder.calls] == [e.id for e in events[:3]]
    assert service.broker.committed(GROUP, tp) == 3
    # The relay stops with the loop: their rows wait in the outbox for the next start.
    assert len(service.events(EMITTED)) + len(service.storage.outbox) == 3

    await service.start()
    await service.settle()
    stats = service.stats
    await service.stop()

    assert [e.id for e in recorder.calls] == [e.id for e in events]
    assert [r.causationid for r in service.events(EMITTED)] == [e.id for e in events]
    assert (stats.handled, stats.duplicates) == (3, 0)
    assert service.broker.committed(GROUP, tp) == 6


async def test_records_redelivered_after_a_lost_commit_are_dropped_by_the_inbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = [completed(f"user-{i}") for i in range(5)]
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder})

    async def lost(self: MemoryConsumer, offsets: Any = None) -> None:
        raise CommitFailedError("the group rebalanced")

    with monkeypatch.context() as patch:
        patch.setattr(MemoryConsumer, "commit", lost)
        async with service:
            await publish_all(service, events)
            await eventually(lambda: len(recorder.calls) == 5 and not service.storage.outbox)
        assert service.broker.lag(GROUP, [CONSUMED]) == 5

    async with service:
        await service.settle()
        stats = service.stats

    assert [recorder.count(e) for e in events] == [1] * 5
    assert len(service.events(EMITTED)) == 5
    assert (stats.handled, stats.duplicates) == (0, 5)


async def test_replicas_share_the_partitions_and_handle_each_event_once() -> None:
    recorder = Recorder()
    first = InMemoryService({CONSUMED: recorder}, broker=MemoryBroker(partitions=4))
    second = InMemoryService(
        {CONSUMED: recorder}, broker=first.broker, storage=first.storage, relay=False
    )
    events = [completed(f"user-{i}") for i in range(40)]

    async with first:
        await publish_all(first, events[:20])
        await first.settle()
        async with second:
            await publish_all(first, events[20:])
            await first.settle()
            shares = (first.stats.assigned, second.stats.assigned)

    assert shares[0]
    assert shares[1]
    assert shares[0].isdisjoint(shares[1])
    assert len(shares[0] | shares[1]) == 4
    assert [recorder.count(e) for e in events] == [1] * 40
    assert sorted(str(r.causationid) for r in first.events(EMITTED)) == sorted(e.id for e in events)


async def test_the_outbox_relay_publishes_only_committed_events_in_order() -> None:
    service = InMemoryService({})
    relay = service.relay
    replies = [reply_to(completed(f"user-{i}"), "test/runtime") for i in range(3)]

    async def rolled_back() -> None:
        async with service.storage.transaction() as tx:
            await tx.enqueue([reply_to(completed("user-x"), "test/runtime")])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await rolled_back()
    async with service.storage.transaction() as tx:
        await tx.enqueue(replies)
    async with service:
        await service.settle()

    assert [e.id for e in service.events(EMITTED)] == [e.id for e in replies]
    assert relay.published == 3
    assert service.storage.outbox == []


async def test_a_batch_handler_takes_a_partitions_records_in_one_transaction() -> None:
    batches: list[list[str]] = []

    async def batch(items: Sequence[BatchItem], ctx: HandlerContext) -> Sequence[Envelope]:
        batches.append([e.id for _, e in items if e is not None])
        return [reply_to(e, ctx.source) for _, e in items if e is not None]

    service = InMemoryService(batch_handler=batch, batch_types=[CONSUMED])
    events = [completed(f"user-{i}") for i in range(4)]
    await publish_all(service, events, partition=1)

    async with service:
        await service.settle()

    assert service.topics == [CONSUMED, f"{CONSUMED}.dlq"]
    assert batches == [[e.id for e in events]]
    assert service.storage.commits == 1
    assert [r.causationid for r in service.events(EMITTED)] == [e.id for e in events]
    assert service.storage.inbox == set()  # a batch handler has no inbox


async def test_a_record_that_fails_the_batch_is_isolated_and_dead_lettered_alone() -> None:
    events = [completed(f"user-{i}") for i in range(3)]
    poison = events[1]
    seen_letters: list[str | None] = []

    async def batch(items: Sequence[BatchItem], ctx: HandlerContext) -> Sequence[Envelope]:
        for record, envelope in items:
            if envelope is None:
                seen_letters.append(header(record, "ce_id"))
            elif envelope.id == poison.id:
                raise ValueError("poison")
        return [reply_to(e, ctx.source) for _, e in items if e is not None]

    service = InMemoryService(batch_handler=batch, batch_types=[CONSUMED], max_attempts=1)
    await publish_all(service, events, partition=0)
    async with service:
        await service.settle()

    assert [header(r, "ce_id") for r in service.dead_letters(CONSUMED)] == [poison.id]
    assert sorted(str(r.causationid) for r in service.events(EMITTED)) == sorted(
        e.id for e in events if e is not poison
    )
    assert seen_letters == [poison.id]  # the batch handler reads its DLQ too


async def test_a_dead_letter_handler_reads_the_dlq_raw_once() -> None:
    envelope = completed("user-1")
    letters: list[Record] = []

    async def on_dead_letter(record: Record, ctx: HandlerContext) -> Sequence[Envelope]:
        letters.append(record)
        return []

    recorder = Recorder(fail={envelope.id: PermanentError("refused")})
    service = InMemoryService({CONSUMED: recorder}, dead_letter_handler=on_dead_letter)
    async with service:
        await service.publish(envelope)
        await service.settle()
        stats = service.stats

    [letter] = service.dead_letters(CONSUMED)
    assert [(r.topic, r.offset) for r in letters] == [(letter.topic, letter.offset)]
    assert header(letters[0], "ce_id") == envelope.id
    assert header(letters[0], "accord-error") == "refused"
    # A dead letter's identity in the inbox is its place in the DLQ.
    position = f"{letter.partition}:{letter.offset}"
    assert (GROUP, f"{CONSUMED}.dlq", position) in service.storage.inbox
    assert (stats.handled, stats.dead_lettered) == (1, 1)


def replayed(envelope: Envelope, *groups: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    record = to_kafka(envelope)
    headers = [*record.headers, (REPLAY_FOR_HEADER, ",".join(groups).encode())]
    return record.key, record.value, headers


async def test_a_replay_is_taken_only_by_the_groups_it_is_meant_for() -> None:
    ours, theirs = completed("user-1"), completed("user-2")
    recorder = Recorder()
    service = InMemoryService({CONSUMED: recorder})

    async with service:
        for envelope, groups in ((theirs, ("accord-other",)), (ours, ("accord-other", GROUP))):
            key, value, headers = replayed(envelope, *groups)
            await service.producer.send_and_wait(CONSUMED, value=value, key=key, headers=headers)
        await service.settle()

    assert [e.id for e in recorder.calls] == [ours.id]
    [resolution] = service.resolutions(CONSUMED)
    assert json.loads(header(resolution, RESOLVES_HEADER) or "") == [ours.id]
    assert header(resolution, "accord-consumer") == GROUP
    assert service.broker.lag(GROUP, [CONSUMED]) == 0


async def test_a_later_event_of_the_same_work_resolves_the_earlier_dead_letters() -> None:
    down = True

    async def call_target(envelope: Envelope, ctx: EffectContext) -> GaveUp | list[Envelope]:
        return GaveUp([], "target down") if down else []

    route = Effect(call_target, work_key=lambda envelope: envelope.subject)
    service = InMemoryService({CONSUMED: route})
    first, other = completed("user-1"), completed("user-2")
    async with service:
        await publish_all(service, [first, other])
        await service.settle()
        assert {key[3] for key in service.storage.dead_letters} == {first.id, other.id}
        down = False
        later = completed("user-1")
        await service.publish(later)
        await service.settle()

    [resolution] = service.resolutions(CONSUMED)
    assert json.loads(header(resolution, RESOLVES_HEADER) or "") == [first.id]
    assert header(resolution, "accord-resolved-by") == later.id
    assert [key[3] for key in service.storage.dead_letters] == [other.id]


async def test_a_handler_that_reaches_for_the_database_fails_loudly() -> None:
    envelope = completed("user-1")

    async def sql_handler(event: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        await ctx.conn.execute("SELECT 1")
        return []

    service = InMemoryService({CONSUMED: sql_handler}, max_attempts=1)
    async with service:
        await service.publish(envelope)
        await service.settle()

    [letter] = service.dead_letters(CONSUMED)
    assert "in-memory storage has no database" in (header(letter, "accord-error") or "")


async def test_a_handlers_context_carries_the_given_connection() -> None:
    seen: list[object] = []
    fake = object()

    async def handler(event: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        seen.append(ctx.conn)
        return []

    async with InMemoryService({CONSUMED: handler}, conn=fake) as service:
        await service.publish(completed("user-1"))
        await service.settle()

    assert seen == [fake]


@dataclass
class Sagas:
    """In-memory ports of a typed route, as a service's unit test would give it."""

    completed: list[str] = field(default_factory=list)


async def test_a_typed_route_runs_on_in_memory_ports() -> None:
    sagas = Sagas()

    async def on_completed(event: Envelope, data: SagaCompleted, ports: Sagas) -> list[Envelope]:
        ports.completed.append(data.saga_id)
        return []

    def ports(ctx: HandlerContext) -> Sagas:
        return sagas  # a service builds its ports from ctx.conn; a test ignores it

    routes = table([on(SagaCompleted, on_completed, ports)])
    envelope = completed("user-1")
    async with InMemoryService(routes) as service:
        await service.publish(envelope)
        await service.settle()

    assert isinstance(envelope.data, SagaCompleted)
    assert sagas.completed == [envelope.data.saga_id]
    assert service.dead_letters(CONSUMED) == []


async def test_a_stop_request_ends_a_poll_in_flight_however_long_it_may_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An idle loop polls with a long wait (IDLE_POLL_MS); stopping must not wait it out.
    # Here the poll would never end by itself: only the stop request can end the loop.
    original = MemoryConsumer.getmany
    polls: list[int] = []

    async def endless(self: MemoryConsumer, *tps: TopicPartition, **kw: Any) -> Any:
        polls.append(kw.get("timeout_ms", 0))
        if len(polls) > 1:
            await asyncio.Event().wait()
        return await original(self, *tps, **kw)

    monkeypatch.setattr(MemoryConsumer, "getmany", endless)
    service = InMemoryService({CONSUMED: Recorder()})
    await service.start()
    await eventually(lambda: len(polls) > 1)
    await asyncio.wait_for(service.stop(), timeout=10)
    assert polls[-1] == IDLE_POLL_MS
