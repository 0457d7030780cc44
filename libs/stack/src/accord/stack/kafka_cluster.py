"""A three-node Apache Kafka cluster on this machine, for tests that take brokers away.

Three KRaft nodes, each broker and controller, formatted with one cluster id and the same
three initial voters (a dynamic quorum: `controller.quorum.bootstrap.servers` names all
three). The brokers are configured from the Kubernetes topic layout, the one Strimzi
deploys: replication factor 3, `min.insync.replicas` 2. Any one node may be killed
(SIGKILL, as a crash) or stopped (a controlled shutdown) and started again on the same ports
and data; `leaders()` says which node leads which partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from accord.events.topic_layout import KUBERNETES, TopicSettings
from accord.stack.errors import StartupError
from accord.stack.kafka import KafkaNode, Voter, kafka_uuid
from accord.stack.lifecycle import Startable

_logger = logging.getLogger(__name__)
T = TypeVar("T")
_ALL_BROKERS_TIMEOUT = 60.0
_ADMIN_TIMEOUT_MS = 5000
_ADMIN_ATTEMPTS = 10
_TEARDOWN_S = 3.0
"""How long each node of a cluster being stopped whole gets before SIGKILL."""


class KafkaCluster(Startable):
    """`size` Apache Kafka nodes on 127.0.0.1 forming one KRaft cluster laid out as
    `layout`; node ids 1..size, each node's data in `data_dir`/node-N and its log in
    `log_dir`/kafka-N.log."""

    def __init__(
        self,
        data_dir: Path,
        *,
        size: int = 3,
        layout: TopicSettings = KUBERNETES,
        log_dir: Path | None = None,
        heap_mb: int = 384,
        log_level: str = "WARN",
    ) -> None:
        """Choose the folders, the number of nodes and each node's heap; ports are free
        ones, kept for the cluster's life."""
        if size < layout.replicas:
            raise ValueError(f"{size} nodes cannot hold {layout.replicas} replicas")
        quorum = [Voter.new(node_id) for node_id in range(1, size + 1)]
        cluster_id = kafka_uuid()
        self.layout = layout
        self.nodes: dict[int, KafkaNode] = {
            voter.node_id: KafkaNode(
                data_dir / f"node-{voter.node_id}",
                voter=voter,
                quorum=quorum,
                cluster_id=cluster_id,
                layout=layout,
                log_dir=log_dir,
                log_name=f"kafka-{voter.node_id}.log",
                heap_mb=heap_mb,
                log_level=log_level,
            )
            for voter in quorum
        }

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address, comma-separated: clients find a live one."""
        return ",".join(node.bootstrap_servers for node in self.nodes.values())

    def node(self, node_id: int) -> KafkaNode:
        """One node by id."""
        try:
            return self.nodes[node_id]
        except KeyError:
            raise ValueError(f"the cluster has no node {node_id}") from None

    async def start(self) -> None:
        """Start every node at once (a broker registers only once a majority of the
        controllers runs) and wait until the metadata lists every broker."""
        started = time.monotonic()
        try:
            await asyncio.gather(*(node.start() for node in self.nodes.values()))
            await self._wait_for_brokers(set(self.nodes), _ALL_BROKERS_TIMEOUT)
        except BaseException:
            await self.stop()
            raise
        _logger.info(
            "Apache Kafka cluster of %d nodes ready in %.1f s",
            len(self.nodes),
            time.monotonic() - started,
        )

    async def stop(self) -> None:
        """Stop every node at once; idempotent. With every controller leaving together, no
        quorum is left to complete a controlled shutdown (each waited out its 30 s), so a
        node gets a few seconds before SIGKILL: a killed process loses nothing its writes
        left in the page cache, and the cluster's data is the test's to throw away."""
        await asyncio.gather(
            *(
                node.process.stop(timeout=_TEARDOWN_S)
                for node in self.nodes.values()
                if node.process
            )
        )

    async def kill(self, node_id: int) -> int:
        """SIGKILL one node, as a crash; its exit status."""
        return await self.node(node_id).kill()

    async def stop_node(self, node_id: int) -> None:
        """Stop one node with a controlled shutdown (it hands its leadership over first)."""
        await self.node(node_id).stop()

    async def start_node(self, node_id: int) -> None:
        """Start a stopped or killed node again on its ports and data; ready when it
        answers metadata and the cluster lists it among its brokers."""
        await self.node(node_id).start()
        await self._wait_for_brokers({node_id}, _ALL_BROKERS_TIMEOUT)

    async def leaders(self, topics: Iterable[str]) -> dict[int, list[TopicPartition]]:
        """The partitions of `topics` each node leads, as the cluster's metadata says now
        (every node listed, with none where it leads nothing; a partition without a
        leader is in no list)."""
        return self._led(await self._describe(topics))

    async def under_replicated(self, topics: Iterable[str]) -> list[TopicPartition]:
        """The partitions of `topics` with a replica out of sync (not in the ISR)."""
        return _under_replicated(await self._describe(topics))

    async def wait_not_leading(
        self,
        node_id: int,
        topics: Iterable[str],
        timeout: float = 60.0,  # noqa: ASYNC109 - the wait is the point
    ) -> float:
        """Wait until every partition of `topics` has a leader and none is `node_id`
        (a crashed node loses its leadership once the controller fences it); seconds."""
        names = list(topics)

        async def moved() -> bool:
            described = await self._describe_or_none(names)
            if described is None:
                return False
            led = self._led(described)
            return not led[node_id] and sum(map(len, led.values())) == _count(described)

        return await self._until(moved, timeout, f"node {node_id} to lead nothing of {names}")

    async def wait_in_sync(
        self,
        topics: Iterable[str] | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - the wait is the point
    ) -> float:
        """Wait until every partition of `topics` (of every topic: None) has a leader and
        every replica in sync (a new topic, or a node back from a fault, catching up);
        seconds."""
        names = None if topics is None else list(topics)

        async def in_sync() -> bool:
            described = await self._describe_or_none(names)
            if described is None:
                return False
            led = self._led(described)
            everywhere = sum(map(len, led.values())) == _count(described)
            return everywhere and not _under_replicated(described)

        what = "every topic" if names is None else names
        return await self._until(in_sync, timeout, f"every replica of {what} in sync")

    async def _describe_or_none(self, topics: list[str] | None) -> list[dict[str, Any]] | None:
        """The topics' metadata, or None while some is not known yet (a new topic)."""
        try:
            return await self._describe(topics)
        except LookupError:
            return None

    def _led(self, described: list[dict[str, Any]]) -> dict[int, list[TopicPartition]]:
        led: dict[int, list[TopicPartition]] = {node_id: [] for node_id in self.nodes}
        for topic in described:
            for partition in topic["partitions"]:
                leader = partition["leader"]
                if leader in led:
                    led[leader].append(TopicPartition(topic["topic"], partition["partition"]))
        return led

    async def _describe(self, topics: Iterable[str] | None) -> list[dict[str, Any]]:
        """The metadata of `topics` (every topic: None)."""
        names = None if topics is None else list(topics)
        described: list[dict[str, Any]] = await self._ask(lambda a: a.describe_topics(names))
        for topic in described:
            if topic["error_code"]:
                raise LookupError(f"cannot describe {topic['topic']}: error {topic['error_code']}")
        return described

    async def _ask(self, request: Callable[[AIOKafkaAdminClient], Awaitable[T]]) -> T:
        """One admin request to the running nodes."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._running_servers(), request_timeout_ms=_ADMIN_TIMEOUT_MS
        )
        await admin.start()
        try:
            attempt = 1
            while True:
                try:
                    return await request(admin)
                except KafkaError as error:
                    # The admin client asks a random broker it knows of: a dead one until
                    # the controller has fenced it. Another attempt asks another.
                    if not error.retriable or attempt == _ADMIN_ATTEMPTS:
                        raise
                attempt += 1
                await asyncio.sleep(0.1)
        finally:
            await admin.close()

    def _running_servers(self) -> str:
        running = [n.bootstrap_servers for n in self.nodes.values() if _running(n)]
        return ",".join(running) or self.bootstrap_servers

    async def _wait_for_brokers(self, node_ids: set[int], timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the cluster's metadata lists the brokers `node_ids`."""

        async def listed() -> bool:
            try:
                cluster = await self._ask(lambda admin: admin.describe_cluster())
            except (KafkaError, OSError) as error:  # only "not yet", until the deadline
                _logger.debug("cluster metadata not answered yet: %r", error)
                return False
            return node_ids <= {broker["node_id"] for broker in cluster["brokers"]}

        try:
            await self._until(listed, timeout, f"the cluster to list brokers {sorted(node_ids)}")
        except TimeoutError as error:
            raise StartupError(str(error)) from None

    @staticmethod
    async def _until(
        check: Callable[[], Awaitable[bool]],
        timeout: float,  # noqa: ASYNC109 - the wait is the point
        what: str,
    ) -> float:
        """Poll `check` until it holds; the seconds it took, or TimeoutError naming `what`."""
        started = time.monotonic()
        while not await check():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            # Each check reads the metadata of every topic asked for: not too often.
            await asyncio.sleep(0.5)
        return time.monotonic() - started


def _running(node: KafkaNode) -> bool:
    return node.process is not None and node.process.running


def _count(described: list[dict[str, Any]]) -> int:
    return sum(len(topic["partitions"]) for topic in described)


def _under_replicated(described: list[dict[str, Any]]) -> list[TopicPartition]:
    lagging = []
    for topic in described:
        for partition in topic["partitions"]:
            if set(partition["replicas"]) - set(partition["isr"]):
                lagging.append(TopicPartition(topic["topic"], partition["partition"]))
    return lagging
