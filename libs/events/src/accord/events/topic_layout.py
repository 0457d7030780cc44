"""How topics are laid out: partitions, replicas, `min.insync.replicas` and retention.

The one table the services create topics from, the deployment files are generated from
(`accord deploy`: Strimzi KafkaTopics, the compose topic list) and the three-broker fault
test runs with: what was tested is what is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.events import topics

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSettings:
    """How the topics of one deployment are laid out."""

    partitions: int
    replicas: int
    min_insync_replicas: int
    retention_ms: int = 7 * DAY_MS
    """Events: the services keep what matters in PostgreSQL; a week covers any outage."""
    dlq_retention_ms: int = 30 * DAY_MS
    """Dead letters wait for an operator to fix the cause and replay them."""

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.replicas < 1:
            raise ValueError("a topic needs at least one partition and one replica")
        if not 1 <= self.min_insync_replicas <= self.replicas:
            raise ValueError("min.insync.replicas must be between 1 and the replicas")

    @classmethod
    def for_replicas(cls, partitions: int, replicas: int) -> TopicSettings:
        """The layout for a replication factor: acks=all waits for two copies where there
        are three or more (one broker may be down), for one where there are fewer (with
        two copies, waiting for both would stop writes whenever one broker is down)."""
        return cls(partitions, replicas, min_insync_replicas=2 if replicas >= 3 else 1)

    def retention(self, topic: str) -> int:
        """The retention of a topic."""
        return self.dlq_retention_ms if topics.is_dlq(topic) else self.retention_ms

    def config(self, topic: str) -> dict[str, str]:
        """The topic-level configuration of a topic. Every topic deletes old records: each
        is a stream of events, none a table keyed by identity (the services keep state in
        PostgreSQL), so none is compacted."""
        return {
            "cleanup.policy": "delete",
            "retention.ms": str(self.retention(topic)),
            "min.insync.replicas": str(self.min_insync_replicas),
        }


# Six partitions: the most consumers of one group that share a topic's work, so the
# autoscalers' maxReplicas (deploy/k8s/base/services/autoscalers.yaml) stay at six or fewer.
KUBERNETES = TopicSettings.for_replicas(partitions=6, replicas=3)
"""Strimzi (the dev overlay patches replicas to one), and the three-broker fault test."""
COMPOSE = TopicSettings.for_replicas(partitions=3, replicas=1)
"""The single-node Kafka of docker-compose.yml, `accord up` and the test suite."""


def broker_config(layout: TopicSettings) -> dict[str, str]:
    """The broker settings a cluster laid out as `layout` needs: the same replication for
    the topics Kafka keeps itself (consumer offsets, transactions, share-group state) as for
    Accord's, and the same `min.insync.replicas` by default."""
    return {
        "default.replication.factor": str(layout.replicas),
        "min.insync.replicas": str(layout.min_insync_replicas),
        "offsets.topic.replication.factor": str(layout.replicas),
        "transaction.state.log.replication.factor": str(layout.replicas),
        "transaction.state.log.min.isr": str(layout.min_insync_replicas),
        "share.coordinator.state.topic.replication.factor": str(layout.replicas),
        "share.coordinator.state.topic.min.isr": str(layout.min_insync_replicas),
    }
