"""500 joiners through a three-broker Apache Kafka cluster that loses brokers (issue 19).

The cluster is laid out as Strimzi deploys it (accord.events.topic_layout.KUBERNETES:
replication factor 3, `min.insync.replicas` 2, idempotent acks=all producers). While the
joiners flow at a steady rate, the broker that leads the most partitions of user.created and
provision.requested is SIGKILLed and started again; once every replica is back in sync, a
second broker is stopped for 10 s and started again. Nothing may be lost or done twice:
one account per joiner, every saga completed, every event once in a log that verifies, no
dead letters. The stall each fault caused is printed, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio

from accord.events import Publisher, UserCreated, topics
from accord.events.brokers import KAFKA
from accord.events.topic_layout import KUBERNETES
from accord.stack.kafka_cluster import KafkaCluster
from accord.stack.platform import Platform, PlatformConfig
from accord.stack.testing import create_database, require_apache_kafka

from .cluster_checks import accounts, dead_letters, joiner_sagas
from .cluster_flow import SteadyFlow
from .conftest import accord_cli, audit_events, eventually, running

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

JOINERS = 500
RATE = 15.0
"""Joiners per second, below what the platform sustains beside three brokers on two cores
(so that a stall shows as one, not as a queue): the flow lasts 33 s and more while it waits
for the replicas, 50 joiners of it after the second broker is back (was 1,000 joiners)."""
KILL_AT = 75
"""The joiner before which the busiest leader is killed: 5 s of baseline."""
STOP_AT = 300
"""The joiner before which a second broker stops (the flow waits here, should the killed
broker not be back in sync yet)."""
STOPPED_S = 10.0
WATCHED = (topics.USER_CREATED, topics.PROVISION_REQUESTED)
FLOW = (
    topics.USER_CREATED,
    topics.SAGA_STARTED,
    topics.PROVISION_REQUESTED,
    topics.ACCOUNT_PROVISIONED,
    topics.SAGA_COMPLETED,
)


@pytest_asyncio.fixture(loop_scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KafkaCluster]:
    """Three Apache Kafka nodes configured from the Kubernetes layout."""
    require_apache_kafka()
    folder = Path(tmp_path_factory.mktemp("kafka-cluster"))
    started = time.monotonic()
    cluster = KafkaCluster(folder / "data", log_dir=folder)
    await cluster.start()
    print(f"\nthree-node cluster ready in {time.monotonic() - started:.1f} s ({folder})")
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def cluster_platform(
    cluster: KafkaCluster, postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """The six services and the demo target on the cluster, topics laid out as Strimzi's."""
    home = Path(tmp_path_factory.mktemp("cluster-platform"))
    config = PlatformConfig.ephemeral(
        home,
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        broker="kafka",
        database_url=await create_database(postgres_server, "accord_cluster"),
        extra_env={
            "ACCORD_LOG_LEVEL": "INFO",
            "ACCORD_TOPIC_PARTITIONS": str(KUBERNETES.partitions),
            "ACCORD_TOPIC_REPLICATION": str(KUBERNETES.replicas),
            "ACCORD_TIMER_POLL_S": "0.2",
            "ACCORD_SAGA_RETRY_BASE_S": "1",
            "ACCORD_SAGA_RETRY_CAP_S": "2",
        },
    )
    async with running(config, " on the cluster") as platform:
        yield platform


async def test_500_joiners_lose_nothing_while_a_leader_is_killed_and_a_broker_stopped(
    cluster: KafkaCluster, cluster_platform: Platform, unique: str
) -> None:
    platform = cluster_platform
    prefix = f"kf{unique}."
    users = [
        UserCreated(user_id=f"kf-{unique}-{i}", user_name=f"{prefix}{i}") for i in range(JOINERS)
    ]
    flow = SteadyFlow(users, RATE)
    publisher = Publisher(
        source="urn:test:hr",
        bootstrap_servers=cluster.bootstrap_servers,
        # A send may wait for a dead leader to be fenced (9 s) and its successor.
        request_timeout_ms=30_000,
        **KAFKA.producer_options(),
    )
    timeline = Timeline()
    async with publisher:
        publishing = asyncio.create_task(flow.run(publisher))
        try:
            await _faults(cluster, flow, timeline)
            await publishing
        finally:
            publishing.cancel()
    timeline.say(f"all {JOINERS} joiners acknowledged (the flow held {flow.held_s:.1f} s)")

    ids = {u.user_id for u in users}
    sagas = await eventually(
        lambda: _all_completed(platform, ids), timeout=150, what="every joiner saga completed"
    )
    timeline.say("every joiner saga completed")
    assert {i: sagas[i] for i in ids} == {i: ["completed"] for i in ids}

    held = await accounts(platform.scim, prefix)
    assert sorted(held) == sorted(u.user_name for u in users), "a joiner without an account"
    assert set(held.values()) == {1}, "a joiner with more than one account"

    records = await eventually(
        lambda: _flow_recorded(platform, ids), timeout=60, what="every flow event audited"
    )
    of_run = [r for r in records if r["subject"] in ids]
    per_event = Counter((r["subject"], r["event_type"]) for r in of_run)
    assert set(per_event) == {(i, e) for i in ids for e in FLOW}
    assert set(per_event.values()) == {1}, "an event recorded twice"
    event_ids = Counter(r["source_event_id"] for r in records)
    assert event_ids.most_common(1)[0][1] == 1, "one event in two records"
    code, out, err = await accord_cli(platform, "audit", "verify", "--json")
    assert code == 0, out + err
    assert json.loads(out)["ok"]

    letters = await dead_letters(cluster.bootstrap_servers)
    assert letters, "no dead-letter topic found: the check would prove nothing"
    assert {dlq: n for dlq, n in letters.items() if n} == {}

    provisioned = {
        str(r["subject"]): _seconds(r["occurred_at"])
        for r in of_run
        if r["event_type"] == topics.ACCOUNT_PROVISIONED
    }
    _print_stalls(flow.sent_at, provisioned, timeline.faults)


class Timeline:
    """What happened when, printed as it happens; the faults' wall-clock times (as the
    audit log's) to tell the joiners each fault stalled."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.faults: list[tuple[str, float]] = []

    def say(self, what: str) -> None:
        """Print what happened, with the seconds since the flow began."""
        print(f"t={time.monotonic() - self.began:5.1f} s  {what}")

    def fault(self, what: str) -> None:
        """A fault begins now."""
        self.faults.append((what, time.time()))
        self.say(what)


async def _faults(cluster: KafkaCluster, flow: SteadyFlow, timeline: Timeline) -> None:
    """SIGKILL the busiest leader and restart it; once every replica is in sync again and
    the flow has reached STOP_AT, stop a second broker for STOPPED_S and start it again."""
    kill_point, stop_point = flow.checkpoint(KILL_AT), flow.checkpoint(STOP_AT)
    await kill_point.reached()
    victim = await _busiest(cluster)
    timeline.fault(f"SIGKILL of node {victim}")
    assert await cluster.kill(victim) == -signal.SIGKILL
    kill_point.release()
    await cluster.start_node(victim)
    timeline.say(f"node {victim} restarted")
    await cluster.wait_in_sync()
    timeline.say("every replica of every topic in sync")

    await stop_point.reached()
    second = await _busiest(cluster, besides=victim)
    stopping = asyncio.create_task(cluster.stop_node(second))
    timeline.fault(f"node {second} stopped for {STOPPED_S:.0f} s")
    stop_point.release()
    await stopping
    timeline.say(f"node {second} down (a controlled shutdown)")
    await asyncio.sleep(STOPPED_S)
    await cluster.start_node(second)
    timeline.say(f"node {second} started again")


async def _busiest(cluster: KafkaCluster, besides: int | None = None) -> int:
    """The node leading the most partitions of the watched topics (not `besides`)."""
    led = await cluster.leaders(WATCHED)
    candidates = [node for node in led if node != besides]
    busiest = max(candidates, key=lambda node: len(led[node]))
    assert led[busiest], f"no node leads a partition of {WATCHED}: {led}"
    return busiest


async def _all_completed(platform: Platform, ids: set[str]) -> dict[str, list[str]] | None:
    sagas = await joiner_sagas(platform)
    if all(sagas.get(user_id) == ["completed"] for user_id in ids):
        return sagas
    await asyncio.sleep(1)  # the platform catches up faster when not asked ten times a second
    return None


async def _flow_recorded(platform: Platform, ids: set[str]) -> list[dict[str, object]] | None:
    records = await audit_events(platform)
    recorded = sum(1 for r in records if r["subject"] in ids and r["event_type"] in FLOW)
    if recorded >= len(ids) * len(FLOW):
        return records
    await asyncio.sleep(1)
    return None


def _seconds(timestamp: object) -> float:
    return datetime.fromisoformat(str(timestamp)).timestamp()


def _print_stalls(
    sent: dict[str, float], provisioned: dict[str, float], faults: list[tuple[str, float]]
) -> None:
    """Publish->account latency of the joiners whose account was created before the first
    fault (the baseline), and after each fault until the next: the worst of each is the
    stall that fault caused."""
    windows: list[list[float]] = [[] for _ in range(len(faults) + 1)]
    for user_id, created in provisioned.items():
        window = sum(1 for _, at in faults if at <= created)
        windows[window].append(created - sent[user_id])
    names = ["baseline (before any fault)", *(f"after {name}" for name, _ in faults)]
    baseline = max(windows[0])
    print("publish->account latency of the joiners whose account came:")
    for name, latencies in zip(names, windows, strict=True):
        if not latencies:
            print(f"  {name:<44}    0 joiners")
            continue
        print(
            f"  {name:<44} {len(latencies):4d} joiners  p50 {statistics.median(latencies):6.2f} s"
            f"  max {max(latencies):6.2f} s  (baseline max {baseline:.2f} s)"
        )
