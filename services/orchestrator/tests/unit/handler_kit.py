"""Helpers of the handler unit tests: fake ports, events, and a provisioner that answers."""

from __future__ import annotations

from typing import Any

from accord.events import (
    Envelope,
    EventData,
    Provisioning,
    ProvisionRequested,
    UserCreated,
    new_event,
)
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.fakes import FakeWorld
from accord.orchestrator.handlers import on_account_result, on_user_created
from accord.orchestrator.testing import answer_of
from accord.orchestrator.testing import grant_of as granted
from accord.orchestrator.testing import revocation_of as revoked

__all__ = ["granted", "revoked"]

SALES = Provisioning(target="crm", group="Sales Team")
EDITORS = Provisioning(target="wiki", group="editors")


def world(**options: Any) -> FakeWorld:
    """Fake ports; every joiner gets crm and wiki unless options say otherwise."""
    options.setdefault("birthright", everyone(["crm", "wiki"]))
    return FakeWorld(WorkflowSettings(**options))


def event(data: EventData, sequence: int | None = None) -> Envelope:
    return new_event(data, source="urn:test:hr", sequence=sequence)


def types(events: list[Envelope]) -> list[str]:
    return [e.type for e in events]


def requests(events: list[Envelope]) -> list[ProvisionRequested]:
    return [e.data for e in events if isinstance(e.data, ProvisionRequested)]


def operations(events: list[Envelope]) -> list[tuple[str, str, bool]]:
    return [(r.target, r.operation, r.profile.active) for r in requests(events)]


def result(request: ProvisionRequested, **failure: Any) -> Envelope:
    """The provisioner's answer to a request: done, or failed when a reason is given."""
    return event(answer_of(request, **failure))


async def answer(w: FakeWorld, events: list[Envelope], **failure: Any) -> list[Envelope]:
    """Answer every request among events (failed when a reason is given); returns what
    the answers caused."""
    caused: list[Envelope] = []
    for request in requests(events):
        data = answer_of(request, **failure)
        caused += await on_account_result(event(data), data, w.ports)
    return caused


async def joined(w: FakeWorld, user: str, **profile: Any) -> list[Envelope]:
    """A joiner whose accounts were all created; returns what the answers caused."""
    created = UserCreated(user_id=user, user_name=user, **profile)
    return await answer(w, await on_user_created(event(created, 1), created, w.ports))


def saga_states(w: FakeWorld, user: str) -> list[tuple[str, str]]:
    """The identity's sagas as (type, status), oldest first."""
    rows = sorted(w.sagas.rows.values(), key=lambda r: r.seq)
    return [(r.state.saga_type, r.state.status) for r in rows if r.state.user_id == user]
