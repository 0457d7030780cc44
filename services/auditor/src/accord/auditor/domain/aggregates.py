"""Stream aggregates of the audit log: one-minute windows and joiner provisioning latency.

Pure: no clock, no I/O. Time arrives with each observation (the audit record's time places
it in a window; the recorded event's time measures latency) and with `advance(now)`, so the
same input always gives the same output.

- Windows are tumbling minutes of audit record time. A window closes once the watermark
  (the latest record time seen) passes its end plus a grace period. After the stream has
  been idle for the grace period, the clock less the grace period moves the watermark on.
  A record of a window already closed is counted, as late, in the watermark's window, so
  totals stay exact; a record time more than a window ahead of the clock is taken as now.
- A joiner is tracked by correlation id from user.created to saga.completed / saga.failed;
  its latency is user.created -> last account.provisioned (event times), measured in the
  window of its end. Records arrive out of order across partitions, so an ended saga whose
  user.created or announced account results are missing waits for them until its window
  closes, and is then measured with what arrived.
- Memory is bounded: joiners without news past the horizon are evicted, the joiners tracked
  and the targets per window are capped, latency samples per window are a reservoir.
- `changes()` says what changed since its last call, for a changelog-backed table;
  `restore()` rebuilds the state from such a table.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from accord.events import topics
from accord.events.catalogue.audit import (
    AuditMetrics,
    AuditRecorded,
    EventCount,
    LatencyStats,
    TargetStats,
)
from accord.events.registry import REGISTRY

OTHER = "other"
JOINER = "joiner"
USER_CREATED = topics.USER_CREATED
SAGA_STARTED = topics.SAGA_STARTED
SAGA_COMPLETED = topics.SAGA_COMPLETED
SAGA_FAILED = topics.SAGA_FAILED
REQUESTED = topics.PROVISION_REQUESTED
PROVISIONED = topics.ACCOUNT_PROVISIONED
PROVISION_FAILED = topics.ACCOUNT_PROVISION_FAILED
#: The record types that tell a joiner's story.
TRACKED = frozenset(
    {USER_CREATED, SAGA_STARTED, SAGA_COMPLETED, SAGA_FAILED, REQUESTED, PROVISIONED}
    | {PROVISION_FAILED}
)
KNOWN_TYPES = frozenset(spec.type for spec in REGISTRY)
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Policy:
    """How long to wait and how much to keep."""

    window_s: int = 60
    grace_s: float = 10.0
    """A window takes late records this long after it ends."""
    horizon_s: float = 3600.0
    """A joiner without news for this long is forgotten, unmeasured."""
    max_joiners: int = 100_000
    max_samples: int = 1000
    """Latencies kept per window and target; beyond that a uniform sample (reservoir)."""
    max_targets: int = 64
    """Targets kept apart per window; further ones are counted as `other`."""

    def __post_init__(self) -> None:
        if self.window_s < 60 or self.window_s % 60:
            raise ValueError("windows are whole minutes")
        if self.grace_s < 0 or self.horizon_s <= self.grace_s:
            raise ValueError("need 0 <= grace < horizon")
        if min(self.max_joiners, self.max_samples, self.max_targets) < 1:
            raise ValueError("limits must be positive")


@dataclass(frozen=True)
class Observation:
    """What the aggregates need of one audit record."""

    recorded_ms: int
    """When the auditor recorded it (ms since the epoch): places it in a window."""
    occurred_ms: int
    """When the recorded event happened: measures latency."""
    event_type: str
    """The recorded type, or `other` for a type the registry does not know."""
    outcome: str
    correlation_id: str
    target: str | None = None
    saga_type: str | None = None
    targets: tuple[str, ...] = ()
    """The targets a saga.started announced."""


def observation_of(record: AuditRecorded, recorded_at: datetime) -> Observation:
    """The observation of an audit.recorded event (recorded_at: its envelope time)."""
    kind = record.event_type_recorded
    saga_type = record.payload.get("saga_type") if kind.startswith("saga.") else None
    targets = record.payload.get("targets") if kind == SAGA_STARTED else None
    return Observation(
        recorded_ms=epoch_ms(recorded_at),
        occurred_ms=epoch_ms(record.occurred_at),
        event_type=kind if kind in KNOWN_TYPES else OTHER,
        outcome=record.outcome,
        correlation_id=record.correlation_id,
        target=record.target,
        saga_type=saga_type if isinstance(saga_type, str) else None,
        targets=tuple(t for t in targets if isinstance(t, str))
        if isinstance(targets, list)
        else (),
    )


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a time without a zone is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def percentile(ordered: list[int], q: int) -> int:
    """Nearest-rank percentile of sorted values: the smallest with q% of them at or below."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]


@dataclass
class Samples:
    """Latencies: exact count and maximum, and a bounded uniform sample."""

    values: list[int] = field(default_factory=list)
    count: int = 0
    max: int = 0

    def add(self, value: int, cap: int, rng: random.Random) -> None:
        """Algorithm R: every value seen has the same chance to be in the sample."""
        self.count += 1
        self.max = max(self.max, value)
        if len(self.values) < cap:
            self.values.append(value)
            return
        slot = rng.randrange(self.count)
        if slot < cap:
            self.values[slot] = value

    def stats(self) -> LatencyStats:
        """Percentiles of the sample, exact count and maximum."""
        if not self.count:
            return LatencyStats()
        ordered = sorted(self.values)
        p50, p90, p99 = (percentile(ordered, q) for q in PERCENTILES)
        return LatencyStats(
            joiners=self.count,
            samples=len(ordered),
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            max_ms=self.max,
        )


@dataclass
class Window:
    """One window's counts and latencies."""

    start_ms: int
    records: int = 0
    late: int = 0
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    latency: Samples = field(default_factory=Samples)
    target_latency: dict[str, Samples] = field(default_factory=dict)

    def targets(self) -> set[str]:
        """Every target the window has figures of."""
        return self.requested.keys() | self.attempts.keys() | self.target_latency.keys()

    def target_name(self, target: str, cap: int) -> str:
        """The target, or `other` once the window keeps `cap` targets apart."""
        known = self.targets()
        return target if target in known or len(known) < cap else OTHER

    def report(self, window_s: int) -> AuditMetrics:
        """The audit.metrics data of the window."""
        targets = []
        for name in sorted(self.targets()):
            attempts, failures = self.attempts.get(name, 0), self.failures.get(name, 0)
            targets.append(
                TargetStats(
                    target=name,
                    requested=self.requested.get(name, 0),
                    attempts=attempts,
                    failures=failures,
                    failure_rate=round(failures / attempts, 4) if attempts else 0.0,
                    latency=self.target_latency.get(name, Samples()).stats(),
                )
            )
        counts = [
            EventCount.model_validate({"event_type": kind, "outcome": outcome, "count": n})
            for (kind, outcome), n in sorted(self.counts.items())
        ]
        return AuditMetrics(
            window_start=minute_text(self.start_ms),
            window_seconds=window_s,
            records=self.records,
            late_records=self.late,
            counts=tuple(counts),
            targets=tuple(targets),
            latency=self.latency.stats(),
        )


def minute_text(ms: int) -> str:
    """`2024-05-01T12:00:00Z`: a window start as the key of its audit.metrics event."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Joiner:
    """What is known of one joiner so far."""

    seen_ms: int
    """Record time of its latest record: joiners without news past the horizon are evicted."""
    started_ms: int | None = None
    """Event time of its user.created."""
    announced: bool = False
    """saga.started seen: the targets to wait for are known."""
    expected: set[str] = field(default_factory=set)
    provisioned: dict[str, int] = field(default_factory=dict)
    """Target -> event time of its account.provisioned."""
    failed: set[str] = field(default_factory=set)
    ended: str | None = None
    """saga.completed or saga.failed."""
    ended_ms: int | None = None
    """Record time of that end."""

    def complete(self) -> bool:
        """Ended, and every announced account has its result: nothing more to wait for."""
        return (
            self.ended is not None
            and self.started_ms is not None
            and self.announced
            and self.expected <= (self.provisioned.keys() | self.failed)
        )

    def measure(self, correlation_id: str) -> Measurement | None:
        """Its latencies; None without its user.created or any account provisioned."""
        if self.started_ms is None:
            return None
        start = self.started_ms
        total = None
        if self.ended == SAGA_COMPLETED and self.provisioned and not self.failed:
            total = max(0, max(self.provisioned.values()) - start)
        targets = {t: max(0, at - start) for t, at in sorted(self.provisioned.items())}
        if total is None and not targets:
            return None
        return Measurement(correlation_id, total, targets)


@dataclass(frozen=True)
class Measurement:
    """One joiner's provisioning latency, in ms."""

    correlation_id: str
    total_ms: int | None
    """user.created -> last account provisioned; None unless the saga completed."""
    targets: Mapping[str, int]
    """user.created -> the account on each target provisioned."""


@dataclass(frozen=True)
class Step:
    """What one observation or clock tick produced."""

    closed: tuple[AuditMetrics, ...] = ()
    measured: tuple[Measurement, ...] = ()
    evicted: int = 0
    """Joiners forgotten unmeasured (no news past the horizon, or over the cap)."""
    late: bool = False
    """The observation's own window was already closed (it is counted in a later one)."""


@dataclass
class Clock:
    """Where the stream is: the watermark, and the end of the windows already closed."""

    watermark_ms: int | None = None
    closed_until_ms: int | None = None


@dataclass
class Changes:
    """What changed since the last `changes()`; None: deleted."""

    clock: Clock | None = None
    windows: dict[int, Window | None] = field(default_factory=dict)
    joiners: dict[str, Joiner | None] = field(default_factory=dict)


class Aggregator:
    """The aggregates' state, fed one observation at a time."""

    def __init__(self, policy: Policy | None = None, rng: random.Random | None = None) -> None:
        self.policy = policy or Policy()
        self._rng = rng or random.Random(0)  # noqa: S311 - sampling, not security
        self._window_ms = self.policy.window_s * 1000
        self._grace_ms = int(self.policy.grace_s * 1000)
        self._horizon_ms = int(self.policy.horizon_s * 1000)
        self.clock = Clock()
        self.windows: dict[int, Window] = {}
        self.joiners: dict[str, Joiner] = {}
        self._ending: dict[str, int] = {}
        self._finished: dict[str, int] = {}
        """Correlations measured, dropped or not joiners: their stragglers are ignored."""
        self._last_arrival_ms: int | None = None
        self._changes = Changes()

    @property
    def pending(self) -> int:
        """Joiners tracked."""
        return len(self.joiners)

    def observe(self, observation: Observation, now: datetime) -> Step:
        """Count one record and follow its joiner; the windows and joiners it closes."""
        now_ms = self._last_arrival_ms = epoch_ms(now)
        if observation.recorded_ms > now_ms + self._window_ms:
            # A record time from the future (a skewed clock, a forged record) must not move
            # the watermark past every window: it is taken as now.
            observation = replace(observation, recorded_ms=now_ms)
        clock = self.clock
        if clock.watermark_ms is None or observation.recorded_ms > clock.watermark_ms:
            clock.watermark_ms = observation.recorded_ms
            self._changes.clock = clock
        window, late = self._window_of(observation.recorded_ms)
        window.late += late
        self._count(window, observation)
        measured, evicted = [], 0
        if observation.event_type in TRACKED:
            evicted = self._follow(observation)
            joiner = self.joiners.get(observation.correlation_id)
            if joiner is not None and joiner.complete():
                measured += self._finish(observation.correlation_id)
        step = self._close(measured, evicted)
        return replace(step, late=late) if late else step

    def advance(self, now: datetime) -> Step:
        """The clock ticked: after an idle grace period, it moves the watermark on."""
        now_ms = epoch_ms(now)
        clock = self.clock
        idle = (
            self._last_arrival_ms is not None and now_ms - self._last_arrival_ms >= self._grace_ms
        )
        if idle and clock.watermark_ms is not None and now_ms - self._grace_ms > clock.watermark_ms:
            clock.watermark_ms = now_ms - self._grace_ms
            self._changes.clock = clock
        return self._close([], 0)

    def changes(self) -> Changes:
        """What changed since the last call (for the changelog-backed table)."""
        changes, self._changes = self._changes, Changes()
        return changes

    def restore(
        self,
        clock: Clock | None,
        windows: Iterable[Window],
        joiners: Mapping[str, Joiner],
        now: datetime,
    ) -> None:
        """Start again from a table's content; with no record by the grace period, the
        clock closes what is due."""
        self.clock = clock or Clock()
        self.windows = {w.start_ms: w for w in windows}
        self.joiners = dict(sorted(joiners.items(), key=lambda item: item[1].seen_ms))
        self._ending = {c: j.ended_ms for c, j in self.joiners.items() if j.ended_ms is not None}
        self._finished.clear()
        self._last_arrival_ms = epoch_ms(now)
        self._changes = Changes()

    def _window_of(self, recorded_ms: int) -> tuple[Window, bool]:
        """The open window of a record time, and whether that time's own window is closed."""
        start = recorded_ms - recorded_ms % self._window_ms
        closed_until = self.clock.closed_until_ms
        late = closed_until is not None and start < closed_until
        if late:
            # Its window is published: the watermark's is still open.
            watermark = self.clock.watermark_ms or recorded_ms
            start = watermark - watermark % self._window_ms
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = Window(start)
        self._changes.windows[start] = window
        return window, late

    def _count(self, window: Window, observation: Observation) -> None:
        window.records += 1
        key = (observation.event_type, observation.outcome)
        window.counts[key] = window.counts.get(key, 0) + 1
        if observation.target is None:
            return
        target = window.target_name(observation.target, self.policy.max_targets)
        if observation.event_type == REQUESTED:
            window.requested[target] = window.requested.get(target, 0) + 1
        elif observation.event_type in (PROVISIONED, PROVISION_FAILED):
            window.attempts[target] = window.attempts.get(target, 0) + 1
            if observation.event_type == PROVISION_FAILED:
                window.failures[target] = window.failures.get(target, 0) + 1

    def _follow(self, observation: Observation) -> int:
        """Update the observation's joiner; returns how many joiners the cap evicted."""
        correlation = observation.correlation_id
        if correlation in self._finished:
            return 0
        kind = observation.event_type
        if observation.saga_type is not None and observation.saga_type != JOINER:
            self._drop(correlation)
            return 0
        joiner = self.joiners.get(correlation)
        evicted = 0
        if joiner is None:
            evicted = self._make_room()
            joiner = self.joiners[correlation] = Joiner(seen_ms=observation.recorded_ms)
        joiner.seen_ms = max(joiner.seen_ms, observation.recorded_ms)
        target = observation.target
        if kind == USER_CREATED:
            joiner.started_ms = observation.occurred_ms
        elif kind == SAGA_STARTED:
            joiner.announced = True
            joiner.expected |= set(observation.targets)
        elif kind == REQUESTED and target is not None:
            joiner.expected.add(target)
        elif kind == PROVISIONED and target is not None:
            joiner.expected.add(target)
            joiner.provisioned[target] = max(
                joiner.provisioned.get(target, 0), observation.occurred_ms
            )
        elif kind == PROVISION_FAILED and target is not None:
            joiner.expected.add(target)
            joiner.failed.add(target)
        elif kind in (SAGA_COMPLETED, SAGA_FAILED) and joiner.ended is None:
            joiner.ended, joiner.ended_ms = kind, observation.recorded_ms
            self._ending[correlation] = observation.recorded_ms
        self._changes.joiners[correlation] = joiner
        return evicted

    def _make_room(self) -> int:
        evicted = 0
        while len(self.joiners) >= self.policy.max_joiners:
            oldest = next(iter(self.joiners))
            self._drop(oldest)
            evicted += 1
        return evicted

    def _drop(self, correlation: str) -> None:
        if self.joiners.pop(correlation, None) is not None:
            self._changes.joiners[correlation] = None
        self._ending.pop(correlation, None)
        self._finished[correlation] = self.clock.watermark_ms or 0
        while len(self._finished) > self.policy.max_joiners:
            del self._finished[next(iter(self._finished))]

    def _finish(self, correlation: str) -> list[Measurement]:
        joiner = self.joiners[correlation]
        self._drop(correlation)
        measurement = joiner.measure(correlation)
        if measurement is None:
            return []
        # Measured in the window of its end (still open: ends are measured before it closes).
        window, _ = self._window_of(joiner.ended_ms or joiner.seen_ms)
        cap, rng = self.policy.max_samples, self._rng
        if measurement.total_ms is not None:
            window.latency.add(measurement.total_ms, cap, rng)
        for target, ms in measurement.targets.items():
            name = window.target_name(target, self.policy.max_targets)
            window.target_latency.setdefault(name, Samples()).add(ms, cap, rng)
        return [measurement]

    def _close(self, measured: list[Measurement], evicted: int) -> Step:
        watermark = self.clock.watermark_ms
        if watermark is None:
            return Step(measured=tuple(measured), evicted=evicted)
        closing = sorted(
            start for start in self.windows if start + self._window_ms + self._grace_ms <= watermark
        )
        closed = []
        for start in closing:
            end = start + self._window_ms
            for correlation, ended_ms in list(self._ending.items()):
                if ended_ms < end:
                    # Its window waited for stragglers as long as for late records: measure
                    # what arrived.
                    measured += self._finish(correlation)
            closed.append(self.windows.pop(start).report(self.policy.window_s))
            self._changes.windows[start] = None
            self.clock.closed_until_ms = max(self.clock.closed_until_ms or 0, end)
            self._changes.clock = self.clock
        if closing:
            evicted += self._evict(watermark)
        return Step(tuple(closed), tuple(measured), evicted)

    def _evict(self, watermark: int) -> int:
        """Forget joiners without news past the horizon (checked as windows close)."""
        limit = watermark - self._horizon_ms
        stale = [c for c, j in self.joiners.items() if j.seen_ms < limit]
        for correlation in stale:
            self._drop(correlation)
        for correlation, at in list(self._finished.items()):
            if at < limit:
                del self._finished[correlation]
        return len(stale)
