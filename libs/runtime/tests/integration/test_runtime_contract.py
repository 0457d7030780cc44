"""The consumer loop holds records built by hand (plain aiokafka, as a foreign source system
would) to the event contract: a breach is dead-lettered with its reason, never handled."""

from __future__ import annotations

import pytest

from accord.events import to_kafka

from .conftest import CONSUMED, Kit, LoopStarter, Recorder, completed, eventually, header

pytestmark = pytest.mark.integration

DLQ = f"{CONSUMED}.dlq"


async def test_a_record_without_a_key_is_dead_lettered_with_the_reason(
    kit: Kit, start_loop: LoopStarter, unique: str
) -> None:
    subject = f"u-{unique}-nokey"
    dead = await kit.collect(DLQ, lambda record: header(record, "ce_subject") == subject)
    recorder = Recorder(f"u-{unique}")
    await start_loop({CONSUMED: recorder})

    keyless = completed(subject)
    record = to_kafka(keyless)
    await kit.send(CONSUMED, None, record.value, list(record.headers))
    later = completed(f"u-{unique}-later")
    await kit.publish(later)

    await eventually(lambda: recorder.count(later.id) == 1, what="the later valid event")
    letter = (await dead.wait_for(1, "the dead letter"))[0]
    assert header(letter, "accord-error") == "record has no key: the key must be ce_subject"
    assert (letter.key, letter.value) == (None, record.value)
    assert recorder.count(keyless.id) == 0
