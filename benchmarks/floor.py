"""The floor: the throughput of a minimal pipeline with no Accord logic, on this machine.

Raw aiokafka consume -> one SCIM POST /Users per event to the same target Accord provisions
into -> one batched insert of the batch into PostgreSQL -> offset commit. Accord's
throughput is reported as a ratio of this figure (issue 8), so the floor stays as plain as a
careful engineer would write it by hand: no envelope, no inbox, no outbox, no saga.

`run_floor` runs against parts that are already up (benchmarks/e2e.py passes those of a
running platform, so the floor runs on the broker Accord was measured on). Run alone it
starts its own broker (Apache Kafka, one KRaft node, unless `--broker tansu` or
ACCORD_BROKER=tansu), PostgreSQL and scim2-server and measures both HTTP clients:

    python benchmarks/floor.py [--broker kafka|tansu] [--count N] [--concurrency C]
                               [--http-client httpx|aiohttp]

The producer asks what the broker's profile asks of every producer (idempotent on Apache
Kafka). The consumer is assigned its partitions (no group join, no partition lookup: Apache
Kafka tells a consumer only of the topics it subscribed to) and reads them from the start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from accord.events.brokers import BrokerProfile, broker_profile, profile_named
from accord.events.kafka_config import client_config
from accord.runtime.settings import ServiceSettings

HTTP_CLIENTS = ("httpx", "aiohttp")
_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
_HTTP_TIMEOUT_S = 10.0
_HTTP_ATTEMPTS = 5
# Accord's consumers fetch up to 500 records at a time; the floor takes what is there.
_MAX_RECORDS = 1000
# Every event is in the topic before the clock starts, so a fetch finds records at once on
# either broker; the wait only matters once the topic is drained (Tansu answers when it runs
# out, Apache Kafka as soon as records are there).
_FETCH_MAX_WAIT_MS = 10
# Give up when no record arrives for this long: the topic holds every event before we start.
_STALL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class FloorResult:
    """What one floor run measured."""

    events: int
    """Joiners pushed through the whole floor pipeline (rows in the run's audit table)."""
    seconds: float
    """Wall time from the first consume to the last commit."""
    per_second: float
    """events / seconds."""
    http_client: str
    """"httpx" or "aiohttp"."""
    concurrency: int
    """At most this many POSTs in flight."""
    cpu_seconds: float
    """CPU time (user + system) of this process during the measured part."""


class _Transient(Exception):
    """The request may not have reached the target (reset, refused, timed out): try again."""


class _Http(Protocol):
    """The two SCIM requests of the floor; raise _Transient on transport errors."""

    async def post_user(self, body: bytes) -> tuple[int, str]: ...

    async def find_user(self, user_name: str) -> tuple[int, str]: ...

    async def aclose(self) -> None: ...


class _HttpxClient:
    """One httpx.AsyncClient (HTTP/1.1, the client of Accord's SCIM connector), its pool sized
    to the concurrency."""

    def __init__(self, base_url: str, token: str, concurrency: int) -> None:
        self._users = f"{base_url.rstrip('/')}/Users"
        self._client = httpx.AsyncClient(
            headers=_headers(token),
            timeout=_HTTP_TIMEOUT_S,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    async def post_user(self, body: bytes) -> tuple[int, str]:
        try:
            response = await self._client.post(self._users, content=body)
        except httpx.TransportError as error:
            raise _Transient(type(error).__name__) from error
        return response.status_code, response.text

    async def find_user(self, user_name: str) -> tuple[int, str]:
        try:
            response = await self._client.get(self._users, params=_filter(user_name))
        except httpx.TransportError as error:
            raise _Transient(type(error).__name__) from error
        return response.status_code, response.text

    async def aclose(self) -> None:
        await self._client.aclose()


class _AiohttpClient:
    """One aiohttp.ClientSession whose connector opens at most `concurrency` connections."""

    def __init__(self, base_url: str, token: str, concurrency: int) -> None:
        self._users = f"{base_url.rstrip('/')}/Users"
        self._session = aiohttp.ClientSession(
            headers=_headers(token),
            timeout=aiohttp.ClientTimeout(total=_HTTP_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=concurrency),
        )

    async def post_user(self, body: bytes) -> tuple[int, str]:
        try:
            async with self._session.post(self._users, data=body) as response:
                return response.status, await response.text()
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            raise _Transient(type(error).__name__) from error

    async def find_user(self, user_name: str) -> tuple[int, str]:
        try:
            async with self._session.get(self._users, params=_filter(user_name)) as response:
                return response.status, await response.text()
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            raise _Transient(type(error).__name__) from error

    async def aclose(self) -> None:
        await self._session.close()


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/scim+json",
        "Accept": "application/scim+json",
    }


def _filter(user_name: str) -> dict[str, str]:
    return {"filter": f'userName eq "{user_name}"', "attributes": "id"}


def _http(http_client: str, base_url: str, token: str, concurrency: int) -> _Http:
    if http_client == "httpx":
        return _HttpxClient(base_url, token, concurrency)
    if http_client == "aiohttp":
        return _AiohttpClient(base_url, token, concurrency)
    raise ValueError(f"http_client must be one of {HTTP_CLIENTS}, not {http_client!r}")


class _Retries:
    """Transport errors the floor retried, by kind, for the progress report."""

    def __init__(self) -> None:
        self.by_kind: Counter[str] = Counter()

    def describe(self) -> str:
        if not self.by_kind:
            return "no retries"
        return "retried " + ", ".join(f"{n} x {kind}" for kind, n in self.by_kind.items())


async def _create_user(http: _Http, event: dict[str, Any], retries: _Retries) -> str:
    """POST the event's user; the id the target gave it."""
    body = _scim_user(event)
    for attempt in range(1, _HTTP_ATTEMPTS + 1):
        try:
            status, text = await http.post_user(body)
        except _Transient as error:
            # scim2-server (socketserver) listens with a backlog of 5 and closes every
            # connection after one answer (HTTP/1.0), so every POST connects anew. With dozens
            # in flight the backlog overflows and httpx sees about 1 % of its connections
            # reset (anyio BrokenResourceError); aiohttp did not, here.
            if attempt == _HTTP_ATTEMPTS:
                raise RuntimeError(f"POST /Users failed {attempt} times: {error}") from error
            retries.by_kind[str(error)] += 1
            await asyncio.sleep(0.1 * 2 ** (attempt - 1))
            continue
        if status == 409 and attempt > 1:
            # A retried POST whose first answer was lost: the user exists, adopt it.
            return await _find_user(http, event["user_name"])
        return _created_id(status, text)
    raise AssertionError("unreachable")


async def _find_user(http: _Http, user_name: str) -> str:
    status, text = await http.find_user(user_name)
    if status != 200:
        raise RuntimeError(f"SCIM target answered {status} to GET /Users: {text[:300]}")
    resources = json.loads(text).get("Resources", [])
    if len(resources) != 1:
        raise RuntimeError(f"{len(resources)} users named {user_name} in the SCIM target")
    target_id = resources[0]["id"]
    assert isinstance(target_id, str)
    return target_id


def _created_id(status: int, text: str) -> str:
    """The new resource's id from a POST /Users answer; raise unless it is a 201."""
    if status != 201:
        raise RuntimeError(f"SCIM target answered {status} to POST /Users: {text[:300]}")
    target_id = json.loads(text)["id"]
    assert isinstance(target_id, str)
    return target_id


def _joiner(run: str, i: int) -> tuple[bytes, bytes]:
    """Key and value of one small joiner event."""
    user_id = f"u-{run}-{i}"
    event = {
        "id": str(uuid.uuid4()),
        "type": "user.joined",
        "user_id": user_id,
        "user_name": f"floor.{run}.{i}",
        "given_name": "Floor",
        "family_name": f"Joiner {i}",
        "department": "Benchmarks",
    }
    return user_id.encode(), json.dumps(event).encode()


def _scim_user(event: dict[str, Any]) -> bytes:
    # A hand-written payload on purpose: building it with scim2-models is Accord's cost, and
    # the floor measures the pipeline without it.
    return json.dumps(
        {"schemas": [_USER_SCHEMA], "userName": event["user_name"], "externalId": event["user_id"]}
    ).encode()


async def _create_topic(config: dict[str, Any], topic: str) -> int:
    """Create the run's topic with Accord's partition count; returns that count."""
    partitions = ServiceSettings().topic_partitions
    admin = AIOKafkaAdminClient(**config)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()
    return partitions


async def _publish(
    config: dict[str, Any], profile: BrokerProfile, topic: str, run: str, count: int
) -> None:
    producer = AIOKafkaProducer(
        **config,
        **profile.producer_options(),
        linger_ms=5,
        max_batch_size=262144,
        request_timeout_ms=15000,
    )
    await producer.start()
    try:
        sent = []
        for i in range(count):
            key, value = _joiner(run, i)
            sent.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class _Target:
    """The SCIM target as the floor calls it."""

    http: _Http
    concurrency: int
    retries: _Retries


async def _post_all(
    target: _Target, records: Sequence[ConsumerRecord[bytes, bytes]]
) -> list[tuple[str, str, str]]:
    """POST every record's user, at most `concurrency` at a time; audit rows in record order."""
    rows: list[tuple[str, str, str] | None] = [None] * len(records)
    todo: Iterator[int] = iter(range(len(records)))

    async def worker() -> None:
        # Workers share one iterator: no task per event, no semaphore.
        for index in todo:
            value = records[index].value
            assert value is not None
            event = json.loads(value)
            target_id = await _create_user(target.http, event, target.retries)
            rows[index] = (event["id"], event["user_id"], target_id)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(target.concurrency, len(records))):
            group.create_task(worker())
    return [row for row in rows if row is not None]


class _Phases:
    """Wall time spent in each step of the measured loop, for the progress report."""

    def __init__(self, started: float) -> None:
        self.seconds = {"fetch": 0.0, "http": 0.0, "insert": 0.0, "commit": 0.0}
        self._mark = started

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._mark
        self._mark = now

    def describe(self) -> str:
        return ", ".join(f"{name} {value:.2f} s" for name, value in self.seconds.items())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _consume(
    consumer: AIOKafkaConsumer,
    target: _Target,
    conn: asyncpg.Connection,
    table: tuple[str, str],
    count: int,
) -> tuple[int, float, float, _Phases]:
    """The measured loop: (events, wall seconds, CPU seconds, phases)."""
    done = 0
    started = cpu_started = 0.0
    phases = _Phases(time.perf_counter())
    last_progress = time.monotonic()
    while done < count:
        fetch_started, cpu_before_fetch = time.perf_counter(), _cpu_seconds()
        batches = await consumer.getmany(timeout_ms=1000, max_records=_MAX_RECORDS)
        records = [record for partition in batches.values() for record in partition]
        if not records:
            if time.monotonic() - last_progress > _STALL_TIMEOUT_S:
                raise TimeoutError(f"no events for {_STALL_TIMEOUT_S:.0f} s after {done}")
            continue
        if done == 0:
            # The clock starts with the fetch that returned the first events.
            started, cpu_started = fetch_started, cpu_before_fetch
            phases = _Phases(fetch_started)
        phases.lap("fetch")
        rows = await _post_all(target, records)
        phases.lap("http")
        await conn.copy_records_to_table(
            table[1],
            schema_name=table[0],
            records=rows,
            columns=["event_id", "user_id", "target_id"],
        )
        phases.lap("insert")
        await consumer.commit(
            {
                TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(part[-1].offset + 1, "")
                for tp, part in batches.items()
                if part
            }
        )
        phases.lap("commit")
        done += len(records)
        last_progress = time.monotonic()
    return done, time.perf_counter() - started, _cpu_seconds() - cpu_started, phases


async def run_floor(
    *,
    bootstrap_servers: str,
    dsn: str,
    scim_base_url: str,
    scim_token: str,
    count: int = 5000,
    concurrency: int = 32,
    http_client: str = "httpx",
    progress: Callable[[str], None] | None = None,
    broker: str | None = None,
) -> FloorResult:
    """Push `count` joiners through the floor pipeline once and measure it; `broker` is the
    broker's kind ("kafka" or "tansu"; default: ACCORD_BROKER, else Apache Kafka)."""
    if count < 1 or concurrency < 1:
        raise ValueError("count and concurrency must be at least 1")
    if http_client not in HTTP_CLIENTS:
        raise ValueError(f"http_client must be one of {HTTP_CLIENTS}, not {http_client!r}")
    say = progress or (lambda _message: None)
    run = uuid.uuid4().hex[:10]
    topic, schema = f"floor.{run}", f"floor_{run}"
    # The environment's TLS/SASL settings, as Accord's clients use them, on the given broker.
    config = {**client_config(), "bootstrap_servers": bootstrap_servers}
    profile = broker_profile() if broker is None else profile_named(broker)
    partitions = await _create_topic(config, topic)
    started = time.perf_counter()
    await _publish(config, profile, topic, run, count)
    publish_seconds = time.perf_counter() - started
    say(
        f"published {count} joiners to {topic} ({partitions} partitions) in {publish_seconds:.2f} s"
    )

    conn = await asyncpg.connect(dsn, timeout=10)
    http = _http(http_client, scim_base_url, scim_token, concurrency)
    target = _Target(http, concurrency, _Retries())
    consumer = AIOKafkaConsumer(
        **config,
        group_id=f"floor.{run}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
    )
    try:
        await conn.execute(
            f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.audit (event_id text PRIMARY KEY,"
            " user_id text NOT NULL, target_id text NOT NULL,"
            " recorded_at timestamptz NOT NULL DEFAULT now())"
        )
        await consumer.start()
        # Assigned, not subscribed: the group only keeps the committed offsets, and the run
        # spends no seconds on a join (Tansu makes a join wait half the session timeout). The
        # partitions are those the topic was created with: no metadata lookup.
        consumer.assign([TopicPartition(topic, partition) for partition in range(partitions)])
        # The group's coordinator found before the clock starts: on a new Apache Kafka the
        # first lookup creates __consumer_offsets, which the first commit would wait for.
        await consumer.committed(TopicPartition(topic, 0))
        consumed, seconds, cpu, phases = await _consume(
            consumer, target, conn, (schema, "audit"), count
        )
        # Outside the measured window: check that every step really happened once per event.
        rows = await conn.fetchval(f"SELECT count(*) FROM {schema}.audit")  # noqa: S608
        committed = 0
        for partition in consumer.assignment():
            committed += await consumer.committed(partition) or 0
        if not rows == consumed == committed == count:
            raise RuntimeError(
                f"published {count}, consumed {consumed}, audited {rows}, committed {committed}"
            )
        say(f"{http_client}: {phases.describe()}; {target.retries.describe()}")
    finally:
        await consumer.stop()
        await http.aclose()
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()
    return FloorResult(
        events=rows,
        seconds=seconds,
        per_second=rows / seconds,
        http_client=http_client,
        concurrency=concurrency,
        cpu_seconds=cpu,
    )


def describe(result: FloorResult) -> str:
    """One readable line for a result."""
    return (
        f"floor {result.http_client:<7} concurrency {result.concurrency}: "
        f"{result.per_second:7.0f} events/s ({result.events} events in {result.seconds:.2f} s, "
        f"{1000 * result.cpu_seconds / result.events:.2f} CPU s per 1,000 events in this process)"
    )


async def main(count: int, concurrency: int, clients: Sequence[str], broker_kind: str) -> None:
    # Imported here so that the driver importing run_floor does not need the stack library.
    from accord.stack.broker import EmbeddedBroker, LocalBroker
    from accord.stack.kafka import KafkaBroker
    from accord.stack.postgres import EmbeddedPostgres
    from accord.stack.scim_target import ScimTarget

    with tempfile.TemporaryDirectory(prefix="accord-floor-") as home:
        broker: LocalBroker
        if broker_kind == "kafka":
            broker = KafkaBroker(Path(home) / "kafka", log_dir=Path(home))
        else:
            broker = EmbeddedBroker(log_dir=Path(home))
        print(f"floor on {broker_kind}", flush=True)
        postgres = EmbeddedPostgres(Path(home) / "pg")
        target = ScimTarget(log_dir=Path(home))
        try:
            for part in (broker, postgres, target):
                await part.start()
            for client in clients:
                result = await run_floor(
                    bootstrap_servers=broker.bootstrap_servers,
                    dsn=postgres.dsn,
                    scim_base_url=f"{target.base_url}/v2",
                    scim_token=target.bearer_token,
                    count=count,
                    concurrency=concurrency,
                    http_client=client,
                    progress=lambda message: print(f"  {message}", flush=True),
                    broker=broker_kind,
                )
                print(describe(result), flush=True)
        finally:
            for part in (target, postgres, broker):
                await part.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--broker",
        choices=("kafka", "tansu"),
        help="the broker started for the floor (default: ACCORD_BROKER, else kafka)",
    )
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--http-client", choices=HTTP_CLIENTS, help="only this client (default: both)"
    )
    args = parser.parse_args()
    chosen = [args.http_client] if args.http_client else list(HTTP_CLIENTS)
    kind = args.broker or broker_profile().name
    asyncio.run(main(args.count, args.concurrency, chosen, kind))
