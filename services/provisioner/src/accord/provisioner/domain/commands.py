"""What the provisioner decides about a provision.requested command, before and between its
calls to the target. Pure: the handler reads, asks these, and acts."""

from __future__ import annotations

from collections.abc import Callable, Container
from datetime import datetime

from accord.events.catalogue import ProvisionRequested
from accord.provisioner.domain.reconcile import DesiredState

#: The longest Retry-After a retry waits for (the partition waits meanwhile).
MAX_RETRY_AFTER_S = 30.0
#: account_id reported when a leaver finds no account: the desired state already holds.
NO_ACCOUNT = "none"
#: Operations this provisioner carries out; any other fails permanently.
SUPPORTED_OPERATIONS = frozenset(
    {"create", "update", "disable", "enable", "delete", "add_member", "remove_member"}
)
#: The account state each operation asks for.
STATE_AFTER: dict[str, DesiredState] = {
    "create": "active",
    "update": "active",
    "enable": "active",
    "disable": "disabled",
    "delete": "absent",
}


def refusal(command: ProvisionRequested, targets: Container[str]) -> str | None:
    """Why the command cannot be carried out at all (no connector for its target, an
    operation this provisioner does not know), or None."""
    if command.target not in targets:
        return f"unknown target {command.target}"
    if command.operation not in SUPPORTED_OPERATIONS:
        return f"operation {command.operation} not supported yet"
    return None


def superseded(issued_at: datetime, latest: datetime | None) -> str | None:
    """Why a command issued then must touch nothing, the ledger's latest command for its
    account (or membership) being `latest`: a newer one was recorded (e.g. a dead letter
    replayed after the identity left). A command is never newer than itself."""
    if latest is not None and latest > issued_at:
        return f"superseded by a newer command of {latest.isoformat()}"
    return None


def retry_delay(
    attempt: int,
    *,
    base_delay_s: float,
    retry_after: float | None,
    uniform: Callable[[float, float], float],
) -> float:
    """How long to wait after failed attempt number `attempt` (from 1).

    Full jitter (`uniform` picks within the exponential backoff) spreads the retries of
    many joiners hitting one throttled target; a Retry-After is a floor, capped.
    """
    backoff = base_delay_s * 2 ** (attempt - 1)
    jitter = uniform(0, backoff)
    floor = min(retry_after, MAX_RETRY_AFTER_S) if retry_after else 0.0
    return floor + jitter


def state_after(command: ProvisionRequested) -> DesiredState:
    """The account state a command asks for; an update of an inactive profile disables."""
    state = STATE_AFTER[command.operation]
    if state == "active" and not command.profile.active:
        return "disabled"
    return state
