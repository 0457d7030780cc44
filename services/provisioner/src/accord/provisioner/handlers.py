"""Provisioner handlers: turn provision.requested into accounts in target systems."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from accord.events import (
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    ProvisionRequested,
    new_event,
)
from accord.provisioner.guard import CircuitOpen, TargetGuard
from accord.provisioner.ports import AccountRef, Connector, TargetRejected, TargetUnavailable
from accord.runtime.consumer import EffectContext, GaveUp

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 30.0
#: account_id reported when a leaver finds no account: the desired state already holds.
NO_ACCOUNT = "none"
#: Operations this provisioner carries out; any other fails permanently.
SUPPORTED_OPERATIONS = frozenset(
    {"create", "update", "disable", "enable", "delete", "add_member", "remove_member"}
)
#: When the latest recorded command for a command's account (or membership) was issued.
LatestCommand = Callable[[ProvisionRequested], Awaitable[datetime | None]]


def command_work(event: Envelope) -> str:
    """What a command is about: one account (or one membership) in one target, as the
    ledger keys it. A later command of the same work handled resolves the dead letters of
    earlier ones (a saga's round that got through after the target came back)."""
    command = event.data
    if not isinstance(command, ProvisionRequested):
        return event.id
    return f"{command.target}/{command.user_id}/{command.group or ''}"


async def handle_provision_requested(
    event: Envelope,
    ctx: EffectContext,
    *,
    connectors: Mapping[str, Connector],
    guards: Mapping[str, TargetGuard] | None = None,
    max_attempts: int = 5,
    base_delay_s: float = 0.2,
    latest_command: LatestCommand | None = None,
) -> list[Envelope] | GaveUp:
    """Bring the account to the command's goal (idempotently) and report the outcome.

    A refusal fails at once. A target that stays unavailable for the target's `attempts`
    (or whose circuit is open) fails retryable, and the command also goes to the DLQ.
    `max_attempts` applies to a target without a guard of its own. A command older than
    the latest one recorded for its account (`latest_command`; e.g. a dead letter replayed
    after the identity left) is superseded: it fails permanently and touches nothing.
    """
    command = event.data
    assert isinstance(command, ProvisionRequested)
    common = {
        "user_id": command.user_id,
        "target": command.target,
        "operation": command.operation,
        "saga_id": command.saga_id,
        "step_id": command.step_id,
        "group": command.group,
    }
    connector = connectors.get(command.target)
    if connector is None:
        return [_failed(event, ctx, common, f"unknown target {command.target}", retryable=False)]
    if command.operation not in SUPPORTED_OPERATIONS:
        reason = f"operation {command.operation} not supported yet"
        return [_failed(event, ctx, common, reason, retryable=False)]
    if latest_command is not None:
        latest = await latest_command(command)
        if latest is not None and latest > event.time:
            reason = f"superseded by a newer command of {latest.isoformat()}"
            return [_failed(event, ctx, common, reason, retryable=False)]
    guard = (guards or {}).get(command.target) or TargetGuard(command.target, attempts=max_attempts)
    attempt = 0
    while True:
        attempt += 1
        try:
            account = await guard.call(lambda: _apply(connector, command))
            break
        except TargetRejected as error:
            return [_failed(event, ctx, common, str(error), retryable=False)]
        except CircuitOpen as error:
            # Fail fast: the saga retries later; the work behind this event goes on meanwhile.
            return _gave_up(event, ctx, common, str(error))
        except TargetUnavailable as error:
            if attempt >= guard.attempts:
                return _gave_up(event, ctx, common, f"gave up after {attempt} attempts: {error}")
            backoff = base_delay_s * 2 ** (attempt - 1)
            # Full jitter spreads retries of many joiners hitting one throttled target; a
            # Retry-After is a floor (capped: the partition waits meanwhile).
            jitter = random.uniform(0, backoff)  # noqa: S311 - jitter, not crypto
            floor = min(error.retry_after, MAX_RETRY_AFTER_S) if error.retry_after else 0.0
            await asyncio.sleep(floor + jitter)
            log.warning(
                "target unavailable; retrying", extra={"target": command.target, "attempt": attempt}
            )
    result = AccountProvisioned(
        **common, account_id=account.account_id, already_existed=account.already_existed
    )
    return [new_event(result, source=ctx.source, causation=event)]


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


def _gave_up(
    event: Envelope, ctx: EffectContext, common: dict[str, str | None], reason: str
) -> GaveUp:
    """Failed for now: the saga hears it (and may retry), the command waits in the DLQ."""
    return GaveUp([_failed(event, ctx, common, reason, retryable=True)], reason)


def _failed(
    event: Envelope,
    ctx: EffectContext,
    common: dict[str, str | None],
    reason: str,
    *,
    retryable: bool,
) -> Envelope:
    log.warning("provisioning failed", extra={"reason": reason})
    data = AccountProvisionFailed(**common, reason=reason[:256], retryable=retryable)
    return new_event(data, source=ctx.source, causation=event)
