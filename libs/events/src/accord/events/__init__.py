"""Accord's event contract: the catalogue, the CloudEvents envelope and a publisher.

Source systems install `accord-events` and publish with::

    async with Publisher(source="urn:hr:workday") as publisher:
        await publisher.publish(UserCreated(user_id="e-1001", user_name="ada"), sequence=1)

The names below are imported when first used (PEP 562): `accord.events.cli` and the light
modules beside it (topics, brokers) load without the models or the Kafka client, so
`accord --help` answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names below are, for mypy (X as X: a re-export)
    from accord.events import topics as topics
    from accord.events.catalogue import *  # noqa: F403 - re-exports the catalogue's __all__
    from accord.events.envelope import Envelope as Envelope
    from accord.events.envelope import KafkaRecord as KafkaRecord
    from accord.events.envelope import from_kafka as from_kafka
    from accord.events.envelope import new_event as new_event
    from accord.events.envelope import to_kafka as to_kafka
    from accord.events.errors import InvalidEvent as InvalidEvent
    from accord.events.errors import UnknownEventType as UnknownEventType
    from accord.events.publisher import Publisher as Publisher
    from accord.events.registry import REGISTRY as REGISTRY
    from accord.events.registry import EventSpec as EventSpec
    from accord.events.registry import Registry as Registry

#: Where each name that is not the catalogue's lives.
_HOMES = {
    "REGISTRY": "accord.events.registry",
    "EventSpec": "accord.events.registry",
    "Registry": "accord.events.registry",
    "Envelope": "accord.events.envelope",
    "KafkaRecord": "accord.events.envelope",
    "from_kafka": "accord.events.envelope",
    "new_event": "accord.events.envelope",
    "to_kafka": "accord.events.envelope",
    "InvalidEvent": "accord.events.errors",
    "UnknownEventType": "accord.events.errors",
    "Publisher": "accord.events.publisher",
}
_CATALOGUE = "accord.events.catalogue"


def _public_names() -> list[str]:
    catalogue: list[str] = importlib.import_module(_CATALOGUE).__all__
    return [*catalogue, *_HOMES, "topics"]


if not TYPE_CHECKING:  # mypy sees the imports above, and no catch-all attribute

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            return _public_names()
        if name == "topics":
            return importlib.import_module("accord.events.topics")
        home = _HOMES.get(name)
        if home is None:
            catalogue = importlib.import_module(_CATALOGUE)
            if name not in catalogue.__all__:
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
            home = _CATALOGUE
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value  # found once
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_public_names()})
