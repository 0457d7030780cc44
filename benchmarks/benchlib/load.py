"""The load generator: user.created events for unique joiners, at a fixed rate or at once.

Records are built (validated, wrapped in CloudEvents, encoded) before a phase starts, so
the generator's own pydantic work never throttles the rate it offers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from accord.events import KafkaRecord, UserCreated, new_event, to_kafka
from accord.events.brokers import BrokerProfile

SOURCE = "urn:accord:bench:hr"
#: The platform's birthright rules give everyone but contractors an account in the demo target.
DEPARTMENT = "Research"


@dataclass(frozen=True)
class Joiner:
    """One joiner of a phase and the record that announces it."""

    user_id: str
    user_name: str
    record: KafkaRecord


def joiners(run: str, phase: str, count: int) -> list[Joiner]:
    """``count`` new identities for one phase; ids are unique to the run and the phase."""
    made = []
    for i in range(count):
        user_id = f"bench-{run}-{phase}-{i}"
        user_name = f"bench.{run}.{phase}.{i}"
        data = UserCreated(
            user_id=user_id,
            user_name=user_name,
            given_name="Ada",
            family_name=f"Bench{i}",
            email=f"{user_name}@example.org",
            department=DEPARTMENT,
            employee_number=str(i),
        )
        record = to_kafka(new_event(data, source=SOURCE, sequence=1))
        made.append(Joiner(user_id, user_name, record))
    return made


def producer(bootstrap_servers: str, profile: BrokerProfile) -> AIOKafkaProducer:
    """What the broker's profile asks of every producer, as accord.events.Publisher does
    (acks=all; idempotent on Apache Kafka, not on Tansu, which refuses InitProducerId); a
    little linger so bursts travel in batches."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        **profile.producer_options(),
        linger_ms=2,
        max_batch_size=262_144,
        request_timeout_ms=30_000,
    )


Stamp = Callable[[str, float], None]
"""Called with (user id, wall-clock publish time) just before each send."""


async def publish_at_rate(
    kafka: AIOKafkaProducer, batch: list[Joiner], rate: float, stamp: Stamp
) -> float:
    """Send joiner i at start + i/rate; returns the rate actually offered (joiners/s)."""
    pending = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, joiner in enumerate(batch):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(await _send(kafka, joiner, stamp))
    await asyncio.gather(*pending)
    elapsed = loop.time() - start
    return len(batch) / elapsed if elapsed > 0 else float("nan")


async def publish_burst(kafka: AIOKafkaProducer, batch: list[Joiner], stamp: Stamp) -> float:
    """Send every joiner as fast as the producer takes them; returns joiners/s offered."""
    started = time.perf_counter()
    pending = [await _send(kafka, joiner, stamp) for joiner in batch]
    await asyncio.gather(*pending)
    return len(batch) / (time.perf_counter() - started)


async def _send(kafka: AIOKafkaProducer, joiner: Joiner, stamp: Stamp) -> asyncio.Future[object]:
    record = joiner.record
    stamp(joiner.user_id, time.time())
    future: asyncio.Future[object] = await kafka.send(
        record.topic, value=record.value, key=record.key, headers=list(record.headers)
    )
    return future
