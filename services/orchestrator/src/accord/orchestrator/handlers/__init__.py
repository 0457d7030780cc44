"""Orchestrator handlers: keep the identity registry and drive the account and access sagas.

Every change of an identity, from Kafka or from the inbound SCIM server, goes through
these functions inside one database transaction, on ports bound to it: the registry, the
saga and the events it causes (written to the outbox) commit together.
"""

from accord.orchestrator.handlers.access import on_access_changed
from accord.orchestrator.handlers.engine import UnknownIdentity, advance
from accord.orchestrator.handlers.identity import (
    on_user_created,
    on_user_status,
    on_user_updated,
)
from accord.orchestrator.handlers.lockout import on_identity_locked, on_identity_unlocked
from accord.orchestrator.handlers.operators import on_operator
from accord.orchestrator.handlers.results import on_account_result
from accord.orchestrator.handlers.timers import on_timer

__all__ = [
    "UnknownIdentity",
    "advance",
    "on_access_changed",
    "on_account_result",
    "on_identity_locked",
    "on_identity_unlocked",
    "on_operator",
    "on_timer",
    "on_user_created",
    "on_user_status",
    "on_user_updated",
]
