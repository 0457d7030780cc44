"""Accord's event contract: the catalogue, the CloudEvents envelope and a publisher.

Source systems install `accord-events` and publish with::

    async with Publisher(source="urn:hr:workday") as publisher:
        await publisher.publish(UserCreated(user_id="e-1001", user_name="ada"), sequence=1)
"""

from accord.events import topics
from accord.events.catalogue import *  # noqa: F403
from accord.events.catalogue import __all__ as _catalogue
from accord.events.envelope import Envelope, KafkaRecord, from_kafka, new_event, to_kafka
from accord.events.errors import InvalidEvent, UnknownEventType
from accord.events.publisher import Publisher
from accord.events.registry import REGISTRY, EventSpec, Registry

__all__ = [
    *_catalogue,
    "REGISTRY",
    "Envelope",
    "EventSpec",
    "InvalidEvent",
    "KafkaRecord",
    "Publisher",
    "Registry",
    "UnknownEventType",
    "from_kafka",
    "new_event",
    "to_kafka",
    "topics",
]
