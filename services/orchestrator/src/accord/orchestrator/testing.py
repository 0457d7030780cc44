"""A simulated world around the real orchestrator, for tests of event orders and failures.

`World` drives the orchestrator's real handlers (its routes) in real PostgreSQL
transactions, as the consumer and the timer loop would, and stands in for everything around
it: the source system's events, the `provision.requested` and `account.*` topics (FIFO, as
one identity's partition is) and the targets, which can go down. Tests choose the order in
which events, commands, results and timers are delivered: the awkward orders the real
platform can produce.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from accord.events import (
    AccessGranted,
    AccessRevoked,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    Profile,
    Provisioning,
    ProvisionRequested,
    Resource,
    new_event,
)
from accord.events.envelope import from_kafka
from accord.orchestrator import sagas, timers
from accord.orchestrator.adapters import store
from accord.orchestrator.bootstrap import routes
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.runtime import outbox
from accord.runtime.consumer import HandlerContext

SOURCE = "urn:test:orchestrator"
NO_ACCOUNT = store.NO_ACCOUNT


@dataclass
class Target:
    """A target system: accounts by user id (True: enabled), and whether it answers."""

    accounts: dict[str, bool] = field(default_factory=dict)
    up: bool = True
    answers: bool = True
    """False: the target does the work but the answer is lost (the provisioner's call times
    out after the target committed), so the step fails though the account changed."""

    def apply(self, command: ProvisionRequested) -> str:
        """Carry out a command as a connector would; returns the account id (or "none")."""
        user = command.user_id
        exists = user in self.accounts
        if command.operation == "create":
            self.accounts.setdefault(user, command.profile.active)
        elif command.operation == "update" and exists:
            self.accounts[user] = command.profile.active
        elif command.operation in ("enable", "disable") and exists:
            self.accounts[user] = command.operation == "enable"
        elif command.operation == "delete":
            self.accounts.pop(user, None)
            return f"{user}@gone"
        elif command.operation in ("add_member", "remove_member"):
            return f"{user}@member"
        return f"{user}@acct" if user in self.accounts else NO_ACCOUNT


@dataclass
class World:
    """The orchestrator, its database and a simulated provisioner with its targets."""

    pool: asyncpg.Pool
    flows: WorkflowSettings
    schema: str
    targets: dict[str, Target]
    commands: deque[Envelope] = field(default_factory=deque)
    results: deque[Envelope] = field(default_factory=deque)
    sequences: dict[str, int] = field(default_factory=dict)
    """Each identity's last sequence from the source; its keys are the world's identities
    (tests may share a database: the world touches only its own)."""

    # --- the source system --------------------------------------------------------------

    def source_event(self, data: EventData, user_id: str) -> Envelope:
        """The next event of an identity from the source, with its sequence."""
        sequence = self.sequences.get(user_id, 0) + 1
        self.sequences[user_id] = sequence
        return new_event(data, source="urn:test:hr", sequence=sequence)

    async def deliver(self, event: Envelope) -> None:
        """Hand one source event to the orchestrator, as its consumer would."""
        await self._handle(event)

    # --- the provisioner ----------------------------------------------------------------

    async def run_command(self) -> bool:
        """The provisioner takes the next command; False when there is none."""
        if not self.commands:
            return False
        command = self.commands.popleft()
        request = command.data
        assert isinstance(request, ProvisionRequested)
        target = self.targets[request.target]
        result: EventData
        if target.up and target.answers:
            result = answer_of(request, account_id=target.apply(request))
        elif target.up:
            target.apply(request)
            result = answer_of(request, reason="timed out", retryable=True)
        else:
            result = answer_of(request, reason="circuit open", retryable=True)
        self.results.append(new_event(result, source="urn:test:provisioner", causation=command))
        return True

    async def take_result(self) -> bool:
        """The orchestrator takes the next provisioning result; False when there is none."""
        if not self.results:
            return False
        result = self.results.popleft()
        await self._handle(result)
        return True

    async def drain(self) -> None:
        """The provisioner and the orchestrator take every command and result there is."""
        while await self.run_command() or await self.take_result():
            pass

    # --- time and operators -------------------------------------------------------------

    async def fire_timers(self, *kinds: str) -> int:
        """Make the timers of these kinds (all kinds when none) due, and fire them."""
        await self.pool.execute(
            "UPDATE timers SET due_at = now() WHERE subject_id = ANY($2::text[])"
            " AND (cardinality($1::text[]) = 0 OR kind = ANY($1::text[]))",
            list(kinds),
            list(self.sequences),
        )
        fired = await timers.fire_due(self.pool, self.flows, schema=self.schema, source=SOURCE)
        await self._collect()
        return fired

    async def retry_failed(self) -> int:
        """An operator retries every failed saga that may run now; returns how many ran."""
        rows = await self.pool.fetch(
            "SELECT saga_id FROM sagas WHERE status = 'failed' AND subject_id = ANY($1::text[])"
            " ORDER BY seq",
            list(self.sequences),
        )
        ran = 0
        for row in rows:
            try:
                await sagas.operate(
                    self.pool,
                    schema=self.schema,
                    source=SOURCE,
                    workflows=self.flows,
                    saga_id=row["saga_id"],
                    action=saga.RetryRequested(),
                )
                ran += 1
            except sagas.SagaConflict:
                continue  # another saga of the identity is in flight: later
        await self._collect()
        return ran

    async def settle(self, *, rounds: int = 50) -> None:
        """Every target back, and everything delivered, retried and fired until nothing
        moves any more (retention included): the state the invariants speak of."""
        for target in self.targets.values():
            target.up = target.answers = True
        for _ in range(rounds):
            moved = bool(self.commands or self.results)
            await self.drain()
            if await self.fire_timers() or await self.retry_failed():
                moved = True
            if not moved and not self.commands and not self.results:
                return
        raise AssertionError(f"the world did not settle in {rounds} rounds")

    async def violations(self) -> list[str]:
        """Where an identity's accounts are not what its status and birthright say: none
        for a deleted identity, all disabled for an inactive or locked one, exactly its
        birthright's, enabled, for an active one."""
        found = []
        for user in sorted(self.sequences):
            entry = await store.get_identity(self.pool, user)
            held = {
                name: t.accounts[user] for name, t in self.targets.items() if user in t.accounts
            }
            if entry is None:
                expected: dict[str, bool] | None = {}
            elif entry["status"] == "deleted":
                expected = {}
            elif entry["status"] == "inactive" or entry["locked_by"] is not None:
                expected = None
                if any(held.values()):
                    found.append(f"{user} is {entry['status']} but holds enabled {held}")
            else:
                profile = Profile.model_validate(entry["profile"])
                expected = dict.fromkeys(self.flows.birthright.targets_for(profile), True)
            if expected is not None and held != expected:
                status = entry["status"] if entry else "unknown"
                found.append(f"{user} is {status}: holds {held}, should hold {expected}")
        return found

    # --- internals ----------------------------------------------------------------------

    async def _handle(self, event: Envelope) -> None:
        """Hand one event to the orchestrator's route for it, as its consumer would."""
        route = routes(self.flows)[event.type]
        async with self.pool.acquire() as conn, conn.transaction():
            ctx = HandlerContext(conn=conn, source=SOURCE, topic=event.type)
            events = await route(event, ctx)
            await outbox.enqueue(conn, self.schema, events)
        await self._collect()

    async def _collect(self) -> None:
        """Move what the orchestrator wrote to its outbox onto the simulated topics."""
        rows = await self.pool.fetch(
            "DELETE FROM outbox WHERE key = ANY($1::bytea[])"
            " RETURNING id, topic, key, value, headers",
            [user.encode() for user in self.sequences],
        )
        for row in sorted(rows, key=lambda r: r["id"]):
            if row["topic"] == "provision.requested":
                headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
                self.commands.append(from_kafka(row["topic"], row["key"], row["value"], headers))


# --- events of the world around the orchestrator, for tests -----------------------------------


def answer_of(
    request: ProvisionRequested, *, account_id: str | None = None, **failure: Any
) -> AccountProvisioned | AccountProvisionFailed:
    """The provisioner's answer to a request: done (with `account_id`, by default one made
    of the target and the user), or failed when a reason is given."""
    common: dict[str, Any] = {
        "user_id": request.user_id,
        "target": request.target,
        "operation": request.operation,
        "saga_id": request.saga_id,
        "step_id": request.step_id,
        "group": request.group,
    }
    if failure:
        return AccountProvisionFailed(**common, **failure)
    account = account_id or f"{request.target}-{request.user_id}"
    return AccountProvisioned(**common, account_id=account)


def _access(user: str, grant_id: str) -> dict[str, Any]:
    return {
        "request_id": f"r-{grant_id}",
        "grant_id": grant_id,
        "principal_id": user,
        "resource": Resource(application="crm", entitlement="sales"),
    }


def grant_of(user: str, *provisioning: Provisioning, grant_id: str = "g-1") -> AccessGranted:
    """authz's grant of crm's sales entitlement to a user, with the groups that carry it."""
    return AccessGranted(**_access(user, grant_id), provisioning=provisioning)


def revocation_of(user: str, *provisioning: Provisioning, grant_id: str = "g-1") -> AccessRevoked:
    """authz's revocation of the grant of `grant_of`."""
    reason = "revoked by an approver"
    return AccessRevoked(**_access(user, grant_id), reason=reason, provisioning=provisioning)
