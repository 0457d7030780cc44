"""Planning time-based triggers' timers: which to schedule, move, cancel or fire at once.

Pure: the caller passes the identity as it was and as it is, the workflows with a time
trigger, the identity's timers that exist (any state) and the time; `plan_timers` says what
to change. The durable store and the loop that fires timers are someone else's; they use
`Timer.timer_id` as the unique key, which is what makes a trigger fire once.

The plan is a reconciliation, not a diff of the event: from `identity_after` it computes the
timers that should exist and compares them with `existing`. So a repeated or replayed event
plans nothing new (idempotent), and a lost one is repaired by the next.

The rules:

- A trigger's date attribute is a profile field (`hire_date`) or a custom attribute of the
  profile (`attributes.contract_end`, read from the identity's `attributes` mapping): both
  hold an ISO date or datetime, as text or a `date`; any other value is unreadable.
- One timer per (identity, workflow, workflow version, date attribute, date value): its
  `TimerKey`, hashed into `timer_id`. It fires once: once a timer is `fired` (or `skipped`)
  no plan brings it back.
- A new date schedules a timer; a changed date schedules one for the new value and cancels
  the pending one of the old value (a different key); a removed (or unreadable) date cancels
  it; an identity that left (`identity_after` is None, a true `left` attribute, or status
  `deleted`) cancels all of its pending timers; so does a workflow no longer in `workflows`
  (disabled or deleted: `workflows` is the whole active set of time-triggered workflows).
- A change of the identity's time zone keeps the key and moves the pending timer: it is in
  `schedule` again with its new time (the store upserts by `timer_id`).
- Versions: fired-ness is per workflow version, as the issue asks. A new version of a
  workflow replaces the old version's pending timers (cancel the old key, schedule the new)
  and, when its time is still ahead, fires even though the old version fired for the same
  date (its offset may have changed: `-P7D` -> `-P3D` is a new moment). What a new version
  does not do is catch up: when its time is already past and another version of the same
  workflow fired (or skipped) for the same date value, it is skipped, so editing a workflow
  does not re-run yesterday's joiners.
- A time already past when planned (a hire date entered late, an orchestrator that was
  down) fires at once (`fire_now`) if it is late by at most the trigger's `catch_up`
  (default 24 hours, the workflow's setting), else it is skipped and reported (`skipped`):
  running a "7 days before the hire date" task three weeks late is more surprising than
  not running it, and the report lets an operator run it on demand. A time equal to `now`
  is due: it fires now.

`fire_now` timers are returned with state `scheduled` and a past `fire_at`; the caller either
fires them and records them `fired`, or stores them as due and lets the firing loop take them.
Either way planning again plans nothing new.

When the set itself changes, `stale_timers` names the pending timers of every identity that
no trigger of the new set plans any more (a workflow removed or disabled, a new version, a
trigger on another date): the store cancels them in one statement, so the timers table
holds no timer that would only be skipped when it fires.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Literal

from accord.orchestrator.domain.identity import ATTRIBUTES_PREFIX
from accord.orchestrator.workflows.durations import Duration
from accord.orchestrator.workflows.timing import TimingError, fire_time, zone_for

#: How late a timer may be when planned and still fire (a workflow may set its own).
DEFAULT_CATCH_UP = timedelta(hours=24)

TimerState = Literal["scheduled", "fired", "skipped", "cancelled"]
#: The states after which a timer's key never fires again.
DONE: frozenset[TimerState] = frozenset({"fired", "skipped"})


@dataclass(frozen=True)
class TimeTrigger:
    """A workflow's time trigger, as planning needs it (the definitions' model maps onto it).

    `zone` is the workflow's zone, used when the identity has no valid `time_zone`;
    `catch_up` is how late a past time may still fire when planned.
    """

    workflow_id: str
    version: str
    attribute: str
    offset: Duration
    zone: str
    catch_up: timedelta = DEFAULT_CATCH_UP


@dataclass(frozen=True)
class TimerKey:
    """What fires once: this identity, this workflow version, this value of this date."""

    identity_id: str
    workflow_id: str
    version: str
    attribute: str
    date_value: str

    @property
    def timer_id(self) -> str:
        """A stable id (the same key gives the same id in every process and release)."""
        canonical = json.dumps(
            [
                "accord.workflow-timer/1",
                self.identity_id,
                self.workflow_id,
                self.version,
                self.attribute,
                self.date_value,
            ],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return "wft-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Timer:
    """A timer of a time trigger: its key, when it fires, and where it stands."""

    key: TimerKey
    fire_at: datetime
    state: TimerState = "scheduled"

    @property
    def timer_id(self) -> str:
        return self.key.timer_id

    def fired(self) -> Timer:
        return replace(self, state="fired")


@dataclass(frozen=True)
class Skipped:
    """A timer planning decided not to fire, and why (for the report and `plan` CLI)."""

    key: TimerKey
    fire_at: datetime | None
    reason: str


@dataclass(frozen=True)
class TimerPlan:
    """What to change: schedule (insert, or move by `timer_id`), cancel (pending timers by
    id), fire now (late but within catch-up), and what was skipped and why."""

    schedule: list[Timer] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    fire_now: list[Timer] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.schedule or self.cancel or self.fire_now)


def plan_timers(
    workflows: Sequence[TimeTrigger],
    identity_before: Mapping[str, object] | None,
    identity_after: Mapping[str, object] | None,
    existing: Sequence[Timer],
    now: datetime,
) -> TimerPlan:
    """The changes that bring this identity's timers in line with `identity_after`.

    `existing` is this identity's timers in any state (other identities' are ignored);
    `now` must be aware. The rules are in the module docstring.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    identity_id = _identity_id(identity_before, identity_after)
    mine = [timer for timer in existing if timer.key.identity_id == identity_id]
    by_id = {timer.timer_id: timer for timer in mine}
    plan = TimerPlan()
    wanted: set[str] = set()
    if identity_after is not None and not has_left(identity_after):
        for trigger in workflows:
            wanted |= _plan_trigger(plan, trigger, identity_id, identity_after, by_id, mine, now)
    plan.cancel.extend(
        sorted(
            timer.timer_id
            for timer in mine
            if timer.state == "scheduled" and timer.timer_id not in wanted
        )
    )
    plan.schedule.sort(key=_order)
    plan.fire_now.sort(key=_order)
    return plan


def has_left(identity: Mapping[str, object]) -> bool:
    """An identity that left has no timers: a true `left` flag or the leaver's status."""
    return identity.get("left") is True or identity.get("status") == "deleted"


def _plan_trigger(
    plan: TimerPlan,
    trigger: TimeTrigger,
    identity_id: str,
    identity: Mapping[str, object],
    by_id: Mapping[str, Timer],
    mine: Sequence[Timer],
    now: datetime,
) -> set[str]:
    """Plan one workflow's timer; returns the ids that should stay (nothing is cancelled
    for a date that is missing or unreadable: the caller cancels what is not kept)."""
    raw = date_attribute(identity, trigger.attribute)
    value = _date_value(raw)
    if value is None:
        return set()
    key = TimerKey(identity_id, trigger.workflow_id, trigger.version, trigger.attribute, value)
    if not isinstance(raw, str | date):
        reason = f"{trigger.attribute} is not ISO 8601 text but {type(raw).__name__} {raw!r}"
        plan.skipped.append(Skipped(key, None, reason))
        return set()
    try:
        at = fire_time(value, trigger.offset, zone_for(identity, trigger.zone))
    except TimingError as error:
        plan.skipped.append(Skipped(key, None, str(error)))
        return set()
    current = by_id.get(key.timer_id)
    if current is not None and current.state in DONE:
        return {key.timer_id}
    if current is not None and current.state == "scheduled" and current.fire_at == at:
        return {key.timer_id}
    timer = Timer(key, at)
    if at > now:
        plan.schedule.append(timer)
        return {key.timer_id}
    other = _done_by_other_version(key, mine)
    if other is not None:
        plan.skipped.append(
            Skipped(key, at, f"past, and version {other.key.version} already {other.state}")
        )
        return set()
    if now - at <= trigger.catch_up:
        plan.fire_now.append(timer)
        return {key.timer_id}
    plan.skipped.append(Skipped(key, at, f"past by {now - at}, more than {trigger.catch_up}"))
    return set()


def date_attribute(identity: Mapping[str, object], name: str) -> object:
    """The value of a trigger's date attribute, None when absent: a profile field
    (`hire_date`) or, for `attributes.<name>`, the entry `<name>` of the identity's custom
    `attributes` mapping (the registry's view, `engine.identity_view`; a name may hold dots:
    `attributes.hr.end` is the entry `hr.end`). A flat key of the whole name, as the
    simulator's identities carry too, is read first."""
    value = identity.get(name)
    if value is not None or not name.startswith(ATTRIBUTES_PREFIX):
        return value
    custom = identity.get(ATTRIBUTES_PREFIX.rstrip("."))
    if not isinstance(custom, Mapping):
        return None
    return custom.get(name.removeprefix(ATTRIBUTES_PREFIX))


def stale_timers(workflows: Sequence[TimeTrigger], timers: Iterable[Timer]) -> list[str]:
    """The scheduled timers (of any identity) that no trigger in `workflows` (the whole
    active set) plans any more: their workflow is gone or disabled, its version replaced,
    or its trigger reads another date. They would only be skipped when due; cancelling
    them when the set changes keeps the store truthful. Sorted ids."""
    planned = {(t.workflow_id, t.version, t.attribute) for t in workflows}
    return sorted(
        timer.timer_id
        for timer in timers
        if timer.state == "scheduled"
        and (timer.key.workflow_id, timer.key.version, timer.key.attribute) not in planned
    )


def _date_value(value: object) -> str | None:
    """The date attribute's value as the text the key holds; None when there is no date
    (a value of another type is kept as its text, so planning reports it unreadable)."""
    if value is None:
        return None
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    text = value.strip() if isinstance(value, str) else str(value)
    return text or None


def _done_by_other_version(key: TimerKey, timers: Iterable[Timer]) -> Timer | None:
    for timer in timers:
        other = timer.key
        if (
            timer.state in DONE
            and other.workflow_id == key.workflow_id
            and other.attribute == key.attribute
            and other.date_value == key.date_value
            and other.version != key.version
        ):
            return timer
    return None


def _identity_id(before: Mapping[str, object] | None, after: Mapping[str, object] | None) -> str:
    ids = {str(identity["id"]) for identity in (before, after) if identity is not None}
    if not ids:
        raise ValueError("plan_timers needs the identity before or after the change")
    if len(ids) > 1:
        raise ValueError(f"the identity before and after the change differ: {sorted(ids)}")
    return ids.pop()


def _order(timer: Timer) -> tuple[datetime, str]:
    return (timer.fire_at, timer.timer_id)
