"""provision.requested: bring an account in a target system to the command's goal, report
the outcome, and note the command in the ledger."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from accord.events import (
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    ProvisionRequested,
    new_event,
)
from accord.provisioner.domain.commands import NO_ACCOUNT, refusal, retry_delay, superseded
from accord.provisioner.guard import CircuitOpen, TargetGuard
from accord.provisioner.metrics import ProvisionerMetrics
from accord.provisioner.ports import (
    AccountRef,
    Connector,
    Ledger,
    TargetRejected,
    TargetUnavailable,
)
from accord.runtime.routes import GaveUp

log = logging.getLogger(__name__)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Provisioning:
    """What the provision.requested effect works with."""

    source: str
    """CloudEvents source of the outcomes."""
    connectors: Mapping[str, Connector]
    """The connector of each target, by name."""
    ledger: Ledger
    guards: Mapping[str, TargetGuard] = field(default_factory=dict)
    """Each target's limits (attempts, rate, circuit breaker)."""
    max_attempts: int = 5
    """Attempts at a target without a guard of its own."""
    base_delay_s: float = 0.2
    """The first retry's backoff; it doubles with each attempt."""
    sleep: Callable[[float], Awaitable[None]] = _sleep
    uniform: Callable[[float, float], float] = random.uniform
    """Picks each retry's jitter."""
    metrics: ProvisionerMetrics | None = None
    """Counts retries and give-ups (and the calls of a target without a guard of its own)."""


def command_work(event: Envelope) -> str:
    """What a command is about: one account (or one membership) in one target, as the
    ledger keys it. A later command of the same work handled resolves the dead letters of
    earlier ones (a saga's round that got through after the target came back)."""
    command = event.data
    if not isinstance(command, ProvisionRequested):
        return event.id
    return f"{command.target}/{command.user_id}/{command.group or ''}"


async def on_provision_requested(
    event: Envelope, data: ProvisionRequested, ports: Provisioning
) -> list[Envelope] | GaveUp:
    """Bring the account to the command's goal (idempotently) and report the outcome.

    A refusal fails at once. A target that stays unavailable for the target's `attempts`
    (or whose circuit is open) fails retryable, and the command also goes to the DLQ.
    A command older than the latest one the ledger recorded for its account (e.g. a dead
    letter replayed after the identity left) is superseded: it fails permanently and
    touches nothing.
    """
    reply = _Replies(event, data, ports.source)
    reason = refusal(data, ports.connectors)
    if reason is None:
        reason = superseded(event.time, await ports.ledger.latest_command_at(data))
    if reason is not None:
        return [reply.failed(reason, retryable=False)]
    connector = ports.connectors[data.target]
    guard = ports.guards.get(data.target) or TargetGuard(
        data.target, attempts=ports.max_attempts, observer=ports.metrics
    )
    metrics = ports.metrics

    def give_up(why: str) -> GaveUp:
        if metrics is not None:
            metrics.gave_up_on(data.target)
        return reply.gave_up(why)

    attempt = 0
    while True:
        attempt += 1
        try:
            account = await guard.call(lambda: _apply(connector, data), operation=data.operation)
            break
        except TargetRejected as error:
            return [reply.failed(str(error), retryable=False)]
        except CircuitOpen as error:
            # Fail fast: the saga retries later; the work behind this event goes on meanwhile.
            return give_up(str(error))
        except TargetUnavailable as error:
            if attempt >= guard.attempts:
                return give_up(f"gave up after {attempt} attempts: {error}")
            if metrics is not None:
                metrics.retried(data.target)
            await ports.sleep(
                retry_delay(
                    attempt,
                    base_delay_s=ports.base_delay_s,
                    retry_after=error.retry_after,
                    uniform=ports.uniform,
                )
            )
            log.warning(
                "target unavailable; retrying", extra={"target": data.target, "attempt": attempt}
            )
    return [reply.provisioned(account)]


async def record_provision_requested(
    event: Envelope, data: ProvisionRequested, ledger: Ledger
) -> list[Envelope]:
    """Note the command in the ledger, in the transaction that commits its outcome."""
    await ledger.record_command(data, commanded_at=event.time, command_id=event.id)
    return []


async def _apply(connector: Connector, command: ProvisionRequested) -> AccountRef:
    """Carry out one command; a leaver's account that is already gone counts as done."""
    if command.operation == "create":
        return await connector.ensure_account(command.user_id, command.profile)
    if command.operation == "update":
        # A lost account is recreated by the connector: already_existed tells which.
        return await connector.update_account(command.user_id, command.profile)
    user_name = command.profile.user_name
    if command.group is not None:
        return await _membership(connector, command, command.group)
    if command.operation == "enable":
        found = await connector.enable_account(command.user_id, user_name)
        if found is None:
            # Unlike a leaver, nothing to enable means the desired state does not hold.
            raise TargetRejected(f"{connector.name}: no account to enable")
        return AccountRef(found, already_existed=True)
    if command.operation == "disable":
        found = await connector.disable_account(command.user_id, user_name)
    else:
        found = await connector.delete_account(command.user_id, user_name)
    return AccountRef(found or NO_ACCOUNT, already_existed=found is not None)


async def _membership(connector: Connector, command: ProvisionRequested, group: str) -> AccountRef:
    """Add to or remove from a group; removing someone without an account is done already."""
    user_name = command.profile.user_name
    if command.operation == "add_member":
        found = await connector.add_member(command.user_id, user_name, group)
        if found is None:
            raise TargetRejected(f"{connector.name}: no account to add to group {group!r}")
        return AccountRef(found, already_existed=True)
    found = await connector.remove_member(command.user_id, user_name, group)
    return AccountRef(found or NO_ACCOUNT, already_existed=found is not None)


@dataclass(frozen=True)
class _Replies:
    """The outcomes of one command, each caused by it and naming its saga step."""

    event: Envelope
    command: ProvisionRequested
    source: str

    def provisioned(self, account: AccountRef) -> Envelope:
        data = AccountProvisioned(
            **self._common(),
            account_id=account.account_id,
            already_existed=account.already_existed,
        )
        return new_event(data, source=self.source, causation=self.event)

    def failed(self, reason: str, *, retryable: bool) -> Envelope:
        log.warning("provisioning failed", extra={"reason": reason})
        data = AccountProvisionFailed(**self._common(), reason=reason[:256], retryable=retryable)
        return new_event(data, source=self.source, causation=self.event)

    def gave_up(self, reason: str) -> GaveUp:
        """Failed for now: the saga hears it (and may retry), the command waits in the DLQ."""
        return GaveUp([self.failed(reason, retryable=True)], reason)

    def _common(self) -> dict[str, str | None]:
        command = self.command
        return {
            "user_id": command.user_id,
            "target": command.target,
            "operation": command.operation,
            "saga_id": command.saga_id,
            "step_id": command.step_id,
            "group": command.group,
        }
