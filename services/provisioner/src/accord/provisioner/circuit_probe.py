"""Open circuits are probed: once a breaker's cooldown is over, the target's health check is
its trial call, whether or not a command is waiting.

Without it a breaker only learns that its target is back from the next command, and after
an outage there may be none for a long time: the sagas' retry rounds ran out and the
commands wait in the DLQ for an operator, who waits for the circuit to close. So
`accord_circuit_open` (and AccordCircuitOpen) would say "down" about a target that is up.
With it the circuit follows the target: closed within a cooldown of the target's return,
open again after each failed probe while it stays down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from accord.provisioner.domain.breaker import BreakerState
from accord.provisioner.guard import CircuitOpen, TargetGuard
from accord.provisioner.ports import Connector, TargetRejected, TargetUnavailable

log = logging.getLogger(__name__)

#: The operation label of a probe's call (accord_provisioner_calls_total).
PROBE = "health"
#: How often the prober looks at the breakers (a probe itself waits for the cooldown).
PROBE_EVERY_S = 1.0


async def probe_due(
    guards: Mapping[str, TargetGuard], connectors: Mapping[str, Connector]
) -> dict[str, BreakerState]:
    """Probe each target whose breaker is half-open with no trial in flight; the targets
    probed and their breaker's state after it."""
    probed = {}
    for name, guard in guards.items():
        connector = connectors.get(name)
        if connector is None or guard.breaker_state() is not BreakerState.HALF_OPEN:
            continue
        if guard.breaker.trial_in_flight:
            continue  # a command's call is the trial already
        try:
            await guard.call(connector.health, operation=PROBE)
        except CircuitOpen:
            continue  # another trial took the slot meanwhile
        except (TargetUnavailable, TargetRejected):
            pass  # the guard has counted it: open again, or closed (it answered)
        except Exception:  # a connector's bug must not stop the probing of the others
            log.exception("circuit probe failed", extra={"target": name})
        probed[name] = guard.breaker_state()
        if probed[name] is BreakerState.CLOSED:
            log.info("target is back: circuit closed", extra={"target": name})
    return probed


async def keep_probing(
    guards: Mapping[str, TargetGuard],
    connectors: Mapping[str, Connector],
    stopping: asyncio.Event,
    every_s: float = PROBE_EVERY_S,
) -> None:
    """Probe the due circuits every `every_s` seconds until `stopping` is set."""
    while not stopping.is_set():
        await probe_due(guards, connectors)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every_s)
