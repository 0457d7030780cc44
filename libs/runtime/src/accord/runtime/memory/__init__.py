"""An in-memory transport and storage for the runtime, so a service's whole consume ->
handle -> outbox path runs in unit tests, with no Kafka and no PostgreSQL.

- `MemoryBroker` holds topics, partitions and consumer groups; its `MemoryConsumer` and
  `MemoryProducer` behave as the parts of aiokafka's clients the runtime uses
  (accord.runtime.transport), see accord.runtime.memory.broker.
- `MemoryStorage` holds the runtime's inbox, outbox and dead letters of named work, with
  transactions (accord.runtime.storage's port), see accord.runtime.memory.storage.

A ConsumerLoop takes them as `consumer=broker.consumer(group)`, `producer=broker.producer()`
and `storage=MemoryStorage()`; an OutboxRelay as `OutboxRelay("", "", producer,
store=storage)`. accord.runtime.testing.InMemoryService wires all of them for a test.
"""

from accord.runtime.memory.broker import MemoryBroker, MemoryConsumer, MemoryProducer, MemoryRecord
from accord.runtime.memory.storage import NO_DATABASE, MemoryStorage

__all__ = [
    "NO_DATABASE",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryProducer",
    "MemoryRecord",
    "MemoryStorage",
]
