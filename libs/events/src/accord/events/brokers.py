"""What the Kafka-protocol broker can do, decided in one place: `ACCORD_BROKER`.

Accord runs on Apache Kafka in production and on Tansu (an embedded, in-memory
Kafka-protocol broker) for `make run`. They differ in ways the clients must respect:

- idempotent producer (InitProducerId): Apache Kafka grants it (`enable_idempotence`
  with `acks=all`); Tansu refuses it, so there producers ask for `acks=all` only;
- a waiting fetch: Apache Kafka answers as soon as a record arrives, Tansu only when the
  wait runs out;
- topic configs at creation (retention, `min.insync.replicas`): applied on Apache Kafka,
  not needed on Tansu (it keeps everything in memory).

The fetch wait still matters on Apache Kafka: aiokafka keeps one fetch in flight per broker
and leaves out of it every partition whose records the service has not consumed yet, so a
partition handled while a fetch waits is asked for again only when that fetch returns. While
records flow the wait is short (50 ms); once a service's topics are quiet every partition is
in the waiting fetch and a record returns it at once, so there the wait is long (500 ms) and
free. On Tansu the wait is the consume latency itself: 20 ms, 200 ms once quiet. Measured
with `make bench` on Apache Kafka (2026-12-05, one run each): a flat 500 ms gave p50/p99
publish -> account at 10/s of 83/616 ms, 20/500 ms 77/351 ms, 50/500 ms 58/295 ms.

Services, the CLI and the benchmarks ask `broker_profile()`; nothing else looks at the
broker's name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

BrokerName = Literal["kafka", "tansu"]
BROKER_ENV = "ACCORD_BROKER"
DEFAULT_BROKER: BrokerName = "kafka"
"""Services deployed anywhere talk to Apache Kafka unless told otherwise; `accord up` and the
tests set ACCORD_BROKER for the broker they start."""


class UnknownBroker(ValueError):
    """ACCORD_BROKER names no broker Accord knows."""


@dataclass(frozen=True)
class BrokerProfile:
    """The client behaviour that suits one broker."""

    name: BrokerName
    idempotent_producer: bool
    """Producers ask for a producer id, so a retried send is written once (Kafka's
    `enable.idempotence`): no duplicate after a lost acknowledgement."""
    fetch_max_wait_ms: int
    """The consumers' fetch wait while records flow."""
    idle_fetch_max_wait_ms: int | None
    """The fetch wait once a consumer's topics have been quiet (None: no change)."""
    audit_fetch_max_wait_ms: int
    """The auditor's fetch wait: it reads every topic, off the latency-critical path."""
    topic_configs: bool
    """Topics are created with their retention and `min.insync.replicas`."""

    def producer_options(self) -> dict[str, Any]:
        """aiokafka producer keyword arguments: every send waits for all in-sync replicas."""
        return {"acks": "all", "enable_idempotence": self.idempotent_producer}


KAFKA = BrokerProfile(
    name="kafka",
    idempotent_producer=True,
    # See the module docstring: short while records flow, long (and free) once quiet.
    fetch_max_wait_ms=50,
    idle_fetch_max_wait_ms=5000,
    audit_fetch_max_wait_ms=100,
    topic_configs=True,
)
TANSU = BrokerProfile(
    name="tansu",
    idempotent_producer=False,
    # Tansu answers a waiting fetch only when the wait runs out: the wait is the latency.
    fetch_max_wait_ms=20,
    idle_fetch_max_wait_ms=200,
    audit_fetch_max_wait_ms=100,
    topic_configs=False,
)
PROFILES: dict[str, BrokerProfile] = {p.name: p for p in (KAFKA, TANSU)}


def profile_named(name: str) -> BrokerProfile:
    """The profile of a broker by name ("kafka" or "tansu", any case)."""
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise UnknownBroker(
            f"{BROKER_ENV}={name!r} names no broker: use one of {', '.join(sorted(PROFILES))}"
        ) from None


def broker_profile(env: Mapping[str, str] | None = None) -> BrokerProfile:
    """The profile ACCORD_BROKER names (Apache Kafka when unset)."""
    env = os.environ if env is None else env
    return profile_named(env.get(BROKER_ENV) or DEFAULT_BROKER)
