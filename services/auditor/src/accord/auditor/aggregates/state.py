"""JSON forms of the aggregates: observations on the repartition topic, state in the table.

The table holds one row per open window (`window:<start ms>`), one per joiner tracked
(`joiner:<correlation id>`) and the clock (`clock`): small rows, each rewritten only when it
changed, so no row comes near a broker's message size limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from accord.auditor.domain.aggregates import (
    Changes,
    Clock,
    Joiner,
    Observation,
    Samples,
    Window,
)
from accord.events.catalogue.audit import Outcome

CLOCK = "clock"
WINDOW = "window:"
JOINER = "joiner:"
_OUTCOMES = frozenset(get_args(Outcome))


class StateError(ValueError):
    """A row or an observation that is not what this module writes."""


def observation_json(observation: Observation) -> dict[str, Any]:
    """An observation as the repartition topic carries it."""
    return {
        "r": observation.recorded_ms,
        "o": observation.occurred_ms,
        "t": observation.event_type,
        "out": observation.outcome,
        "c": observation.correlation_id,
        "tg": observation.target,
        "st": observation.saga_type,
        "ts": list(observation.targets),
    }


def observation_from(data: Any) -> Observation:
    """The observation of observation_json's output; StateError on anything else."""
    try:
        observation = Observation(
            recorded_ms=_int(data["r"]),
            occurred_ms=_int(data["o"]),
            event_type=_str(data["t"]),
            outcome=_str(data["out"]),
            correlation_id=_str(data["c"]),
            target=_opt_str(data["tg"]),
            saga_type=_opt_str(data["st"]),
            targets=tuple(_str(t) for t in _list(data["ts"])),
        )
    except (KeyError, TypeError) as error:
        raise StateError(f"not an observation: {error!r}") from None
    if observation.outcome not in _OUTCOMES:
        raise StateError(f"not an outcome: {observation.outcome!r}")
    return observation


def batch_json(observations: Iterable[Observation]) -> dict[str, Any]:
    """Observations as one message of the repartition topic."""
    return {"observations": [observation_json(o) for o in observations]}


def batch_from(data: Any) -> tuple[list[Observation], int]:
    """The observations of batch_json's output, and how many items were unreadable."""
    items = data.get("observations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise StateError("not a batch of observations")
    observations, unreadable = [], 0
    for item in items:
        try:
            observations.append(observation_from(item))
        except StateError:
            unreadable += 1
    return observations, unreadable


def rows(changes: Changes) -> dict[str, Any | None]:
    """Table rows to write (None: delete the row)."""
    out: dict[str, Any | None] = {}
    if changes.clock is not None:
        out[CLOCK] = {
            "watermark": changes.clock.watermark_ms,
            "closed_until": changes.clock.closed_until_ms,
        }
    for start, window in changes.windows.items():
        out[f"{WINDOW}{start}"] = None if window is None else _window_json(window)
    for correlation, joiner in changes.joiners.items():
        out[f"{JOINER}{correlation}"] = None if joiner is None else _joiner_json(joiner)
    return out


@dataclass(frozen=True)
class Restored:
    """What a table's rows hold."""

    clock: Clock | None
    windows: list[Window]
    joiners: dict[str, Joiner]
    skipped: int
    """Rows that could not be read (and are left out)."""


def state_from(items: Iterable[tuple[Any, Any]]) -> Restored:
    """The clock, windows and joiners of a table's rows."""
    clock: Clock | None = None
    windows: list[Window] = []
    joiners: dict[str, Joiner] = {}
    skipped = 0
    for key, value in items:
        if not isinstance(key, str) or value is None:
            continue
        try:
            if key == CLOCK:
                clock = Clock(_opt_int(value["watermark"]), _opt_int(value["closed_until"]))
            elif key.startswith(WINDOW):
                windows.append(_window_from(value))
            elif key.startswith(JOINER):
                joiners[key.removeprefix(JOINER)] = _joiner_from(value)
            else:
                skipped += 1
        except (KeyError, TypeError, ValueError, AttributeError):
            skipped += 1
    return Restored(clock, windows, joiners, skipped)


def _window_json(window: Window) -> dict[str, Any]:
    return {
        "start": window.start_ms,
        "records": window.records,
        "late": window.late,
        "counts": [[kind, outcome, n] for (kind, outcome), n in window.counts.items()],
        "requested": window.requested,
        "attempts": window.attempts,
        "failures": window.failures,
        "latency": _samples_json(window.latency),
        "targets": {t: _samples_json(s) for t, s in window.target_latency.items()},
    }


def _window_from(data: Mapping[str, Any]) -> Window:
    return Window(
        start_ms=_int(data["start"]),
        records=_int(data["records"]),
        late=_int(data["late"]),
        counts={(_str(k), _str(o)): _int(n) for k, o, n in _list(data["counts"])},
        requested=_counts(data["requested"]),
        attempts=_counts(data["attempts"]),
        failures=_counts(data["failures"]),
        latency=_samples_from(data["latency"]),
        target_latency={_str(t): _samples_from(s) for t, s in data["targets"].items()},
    )


def _samples_json(samples: Samples) -> list[Any]:
    return [samples.count, samples.max, samples.values]


def _samples_from(data: Any) -> Samples:
    count, top, values = data
    return Samples([_int(v) for v in _list(values)], _int(count), _int(top))


def _joiner_json(joiner: Joiner) -> dict[str, Any]:
    return {
        "seen": joiner.seen_ms,
        "started": joiner.started_ms,
        "announced": joiner.announced,
        "expected": sorted(joiner.expected),
        "provisioned": joiner.provisioned,
        "failed": sorted(joiner.failed),
        "ended": joiner.ended,
        "ended_ms": joiner.ended_ms,
    }


def _joiner_from(data: Mapping[str, Any]) -> Joiner:
    return Joiner(
        seen_ms=_int(data["seen"]),
        started_ms=_opt_int(data["started"]),
        announced=data["announced"] is True,
        expected={_str(t) for t in _list(data["expected"])},
        provisioned=_counts(data["provisioned"]),
        failed={_str(t) for t in _list(data["failed"])},
        ended=_opt_str(data["ended"]),
        ended_ms=_opt_int(data["ended_ms"]),
    )


def _counts(data: Any) -> dict[str, int]:
    if not isinstance(data, dict):
        raise TypeError("expected an object")
    return {_str(k): _int(v) for k, v in data.items()}


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value
