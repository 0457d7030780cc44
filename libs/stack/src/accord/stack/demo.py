"""The organisation `accord up` starts with: a manager and her report.

The approval chain of docs/policies.md (the principal's manager, then the application's
owner) needs a manager to ask: Grace Hopper (m-1001) manages Alan Turing (e-1000), and the
tour's joiner, Ada (e-1001), joins her team.

They are published as a source system would publish them, at every start, with fixed event
ids and sequence 1: the services and the audit log take each event once however often the
platform starts, and a later change to these identities (a higher sequence) is never undone.
"""

from __future__ import annotations

import uuid

from accord.events import Publisher, UserCreated
from accord.events.brokers import BrokerProfile

SOURCE = "urn:accord:demo"
SEQUENCE = 1
_IDS = uuid.UUID("6f0c3a52-3b1e-4c55-9d0e-5d2b1f6a7c10")

MANAGER = UserCreated(
    user_id="m-1001",
    user_name="grace",
    given_name="Grace",
    family_name="Hopper",
    email="grace@example.org",
    title="Engineering Manager",
    department="Engineering",
)
REPORT = UserCreated(
    user_id="e-1000",
    user_name="alan",
    given_name="Alan",
    family_name="Turing",
    email="alan@example.org",
    title="Engineer",
    department="Engineering",
    manager_id=MANAGER.user_id,
)
ORGANISATION = (MANAGER, REPORT)


def event_id(person: UserCreated) -> str:
    """The fixed id of a person's user.created."""
    return str(uuid.uuid5(_IDS, person.user_id))


def describe() -> str:
    """Who the organisation is, for `accord up`'s output."""
    manager, report = MANAGER, REPORT
    return (
        f"{manager.user_id} {manager.user_name} (a manager), "
        f"{report.user_id} {report.user_name} (her report)"
    )


async def seed(bootstrap_servers: str, broker: BrokerProfile) -> None:
    """Publish the organisation (again: the services take each event once) to a broker of
    the given kind (accord up's own environment need not name it)."""
    async with Publisher(
        source=SOURCE, bootstrap_servers=bootstrap_servers, **broker.producer_options()
    ) as publisher:
        for person in ORGANISATION:
            await publisher.publish(person, sequence=SEQUENCE, event_id=event_id(person))
