"""Helpers of the handler unit tests: fake ports, events, and a provisioner that answers."""

from __future__ import annotations

from typing import Any

from accord.events import (
    AccessGranted,
    AccessRevoked,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    Provisioning,
    ProvisionRequested,
    Resource,
    UserCreated,
    new_event,
)
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.fakes import FakeWorld
from accord.orchestrator.handlers import on_account_result, on_user_created

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
    common: dict[str, Any] = {
        "user_id": request.user_id,
        "target": request.target,
        "operation": request.operation,
        "saga_id": request.saga_id,
        "step_id": request.step_id,
        "group": request.group,
    }
    if failure:
        return event(AccountProvisionFailed(**common, **failure))
    return event(AccountProvisioned(**common, account_id=f"{request.target}-{request.user_id}"))


async def answer(w: FakeWorld, events: list[Envelope], **failure: Any) -> list[Envelope]:
    """Answer every request among events (failed when a reason is given); returns what
    the answers caused."""
    caused: list[Envelope] = []
    for request in requests(events):
        answered = result(request, **failure)
        data = answered.data
        assert isinstance(data, AccountProvisioned | AccountProvisionFailed)
        caused += await on_account_result(answered, data, w.ports)
    return caused


async def joined(w: FakeWorld, user: str, **profile: Any) -> list[Envelope]:
    """A joiner whose accounts were all created; returns what the answers caused."""
    created = UserCreated(user_id=user, user_name=user, **profile)
    return await answer(w, await on_user_created(event(created, 1), created, w.ports))


def granted(user: str, *provisioning: Provisioning, grant_id: str = "g-1") -> AccessGranted:
    return AccessGranted(
        request_id=f"r-{grant_id}",
        grant_id=grant_id,
        principal_id=user,
        resource=Resource(application="crm", entitlement="sales"),
        provisioning=provisioning,
    )


def revoked(user: str, *provisioning: Provisioning, grant_id: str = "g-1") -> AccessRevoked:
    return AccessRevoked(
        request_id=f"r-{grant_id}",
        grant_id=grant_id,
        principal_id=user,
        resource=Resource(application="crm", entitlement="sales"),
        reason="revoked by an approver",
        provisioning=provisioning,
    )


def saga_states(w: FakeWorld, user: str) -> list[tuple[str, str]]:
    """The identity's sagas as (type, status), oldest first."""
    rows = sorted(w.sagas.rows.values(), key=lambda r: r.seq)
    return [(r.state.saga_type, r.state.status) for r in rows if r.state.user_id == user]
