"""Simulate a draft workflow set on recorded identity history, beside the active set.

``accord workflows simulate`` asks "what would this change to our workflows have done
last month?". It replays the identity events the audit log recorded (user.created,
updated, deactivated, reactivated, deleted) through two sets of workflows, the active one
and a draft, touching no target, and reports the difference: runs per workflow, tasks per
workflow and kind, accounts that would be created, enabled, disabled or deleted per
target, approvals that would be asked.

The core is pure (:func:`replay`, :func:`diff`); reading the history is a thin edge
(:func:`read_export`, :func:`read_api`). Which workflows a change or a timer starts is
not decided here: a :class:`Planner` (the matcher, bound by the caller) answers it, so the
simulation and the engine cannot disagree about matching.

How a replay goes:

- Events are taken in time order (``occurred_at``, then the log's ``record_id``). The audit
  record does not keep the envelope's per-subject ``sequence``; the source publishes an
  identity's events in sequence order and the log records them in that order, so time then
  log order is the closest stand-in for the registry's sequence order.
- Each identity's state is rebuilt as the registry does: created and updated events carry
  the whole profile (a snapshot); deactivated, reactivated and deleted change the status
  only. ``changed`` is :func:`~accord.orchestrator.domain.identity.changed_attributes`.
- Events before the window (``since``) only build state and timers (a warm-up); events in
  ``[since, until)`` are also planned. An update about an identity never seen (created
  before the history that was read) has no ``before``: what it changed is unknown, so it
  only sets the state and is reported (``no_baseline``); widen the history to avoid it.
- Time triggers: after each event the identity's timers are planned with
  :func:`~accord.orchestrator.workflows.timers.plan_timers` against the replay's own
  timers (so a moved date moves its timer, a removed one or a leaver cancels it), and
  timers fire at their fire time, interleaved with the events in time order. Each set has
  its own timers: a draft with a different offset fires at a different time.
- A run counts its tasks that would run (``would_run`` True, or None: decided at run time
  from earlier tasks' outputs, counted as running since the simulation cannot know).
  Account tasks on ``all`` targets mean the identity's birthright targets at that moment.
  The replay does not model runs waiting on one another or a leaver cancelling a waiting
  joiner: it reports what each trigger starts.
- Fields the auditor redacted (``ACCORD_AUDIT_REDACT_FIELDS``) are stored as
  ``[redacted]``: their values are gone, so scopes and conditions that read them cannot be
  simulated. They are replayed as absent and named in the report with their counts.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from accord.events import topics
from accord.events.catalogue import Profile
from accord.orchestrator.domain.identity import ATTRIBUTES_PREFIX, changed_attributes
from accord.orchestrator.workflows.definitions import ALL
from accord.orchestrator.workflows.timers import Timer, TimeTrigger, plan_timers

__all__ = [
    "IDENTITY_EVENTS",
    "REDACTED",
    "AccountOp",
    "Approval",
    "Change",
    "Diff",
    "HistoryEvent",
    "PlannedRunLike",
    "PlannedTaskLike",
    "Planner",
    "Replay",
    "RunKey",
    "Simulation",
    "diff",
    "event_from_record",
    "read_api",
    "read_export",
    "replay",
]

#: The identity events a replay reads; everything else in the log is ignored.
IDENTITY_EVENTS: tuple[str, ...] = (
    topics.USER_CREATED,
    topics.USER_UPDATED,
    topics.USER_DEACTIVATED,
    topics.USER_REACTIVATED,
    topics.USER_DELETED,
)
#: What the auditor stores in place of a redacted field (accord.auditor.domain.normalise).
REDACTED = "[redacted]"
#: Account task kinds and the operation each is on a target.
ACCOUNT_OPS: Mapping[str, str] = {
    "create_accounts": "create",
    "enable_accounts": "enable",
    "disable_accounts": "disable",
    "delete_accounts": "delete",
}
_STATUS_OF = {
    topics.USER_CREATED: "active",
    topics.USER_DEACTIVATED: "inactive",
    topics.USER_REACTIVATED: "active",
    topics.USER_DELETED: "deleted",
}


# History ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEvent:
    """One recorded identity event: an audit record reduced to what a replay reads."""

    record_id: int
    event_id: str
    event_type: str
    subject: str
    occurred_at: datetime
    payload: Mapping[str, Any]


def event_from_record(record: Mapping[str, Any]) -> HistoryEvent | None:
    """An audit record (``GET /v1/audit/events`` item or export line) as a history event;
    None for a record that is not an identity event or is a dead letter (never applied)."""
    if record.get("event_type") not in IDENTITY_EVENTS:
        return None
    if str(record.get("source_topic", "")).endswith(".dlq"):
        return None
    occurred = record["occurred_at"]
    if isinstance(occurred, str):
        occurred = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
    payload = record.get("payload") or {}
    return HistoryEvent(
        record_id=int(record["record_id"]),
        event_id=str(record.get("source_event_id") or record["record_id"]),
        event_type=str(record["event_type"]),
        subject=str(record.get("subject") or payload.get("user_id")),
        occurred_at=occurred,
        payload=payload,
    )


def read_export(lines: Iterable[str]) -> Iterator[HistoryEvent]:
    """History from the auditor's JSON lines export (``accord audit events --format ndjson
    --all``, ``GET /v1/audit/export``); blank lines and other events are skipped.

    :raises ValueError: a line that is not a JSON object, with its line number.
    """
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            event = event_from_record(record)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"line {number}: not an audit record: {error}") from None
        if event is not None:
            yield event


class Fetch(Protocol):
    """GET a JSON document: the one call :func:`read_api` makes (httpx in the CLI)."""

    def __call__(self, path: str, params: Mapping[str, str | int]) -> Mapping[str, Any]: ...


def read_api(
    fetch: Fetch,
    *,
    since: datetime | None,
    until: datetime | None,
    page_size: int = 1000,
) -> list[HistoryEvent]:
    """History through the auditor's query API (``GET /v1/audit/events``), page by page.

    One listing per identity event type (the API filters one ``type`` at a time), each
    followed through its ``next_after`` cursor, merged in log order. The orchestrator reads
    the auditor's API, not its tables: the auditor owns its schema.
    """
    streams: list[list[HistoryEvent]] = []
    for event_type in IDENTITY_EVENTS:
        found: list[HistoryEvent] = []
        after = 0
        while True:
            params: dict[str, str | int] = {"type": event_type, "limit": page_size}
            if after:
                params["after"] = after
            if since is not None:
                params["since"] = since.isoformat()
            if until is not None:
                params["until"] = until.isoformat()
            page = fetch("/v1/audit/events", params)
            for item in page.get("items", []):
                event = event_from_record(item)
                if event is not None:
                    found.append(event)
            cursor = page.get("next_after")
            if not cursor:
                break
            after = int(cursor)
        streams.append(found)
    return list(heapq.merge(*streams, key=lambda event: event.record_id))


# What a planner answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One identity change as the matcher sees it (the fields of matching's IdentityChange).

    ``before`` and ``after`` are identity mappings (:func:`identity_mapping`): the profile
    plus ``id``, ``status`` and ``attributes.<name>`` keys.
    """

    event_type: str
    identity_id: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    changed: frozenset[str]
    event_id: str
    at: datetime


class PlannedTaskLike(Protocol):
    """A task of a planned run: its id, its kind, and whether it would run (None: decided at
    run time)."""

    @property
    def task_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def would_run(self) -> bool | None: ...


class PlannedRunLike(Protocol):
    """A run a change or a timer would start."""

    @property
    def workflow_id(self) -> str: ...
    @property
    def identity_id(self) -> str: ...
    @property
    def tasks(self) -> Sequence[PlannedTaskLike]: ...


class Planner(Protocol):
    """Which workflows of one set start, for a change or for a timer (the matcher, bound to a
    set), and the definitions a simulation reads targets and approvers from."""

    def runs_for(self, change: Change) -> Sequence[PlannedRunLike]:
        """The runs an identity event starts."""
        ...

    def time_triggers(self) -> Sequence[TimeTrigger]:
        """The set's time triggers (enabled workflows with a date trigger)."""
        ...

    def runs_for_timer(
        self, timer: Timer, identity: Mapping[str, Any], now: datetime
    ) -> Sequence[PlannedRunLike]:
        """The runs a timer starts when it fires (its scope must still hold)."""
        ...

    def task(self, workflow_id: str, task_id: str) -> Any | None:
        """A task's definition (targets of an account task, approvers of an approval)."""
        ...


# The result of one set ------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class RunKey:
    """A run, as both sets can name it: the workflow, the identity, the cause (an event id,
    or ``<attribute> <date value>`` for a timer: versions differ between sets) and when."""

    workflow_id: str
    identity_id: str
    cause: str
    at: str


@dataclass(frozen=True, order=True)
class AccountOp:
    """An account operation a run would do: create, enable, disable or delete."""

    target: str
    op: str
    identity_id: str


@dataclass(frozen=True, order=True)
class Approval:
    """An approval a run would ask."""

    workflow_id: str
    task_id: str
    identity_id: str
    approvers: str


@dataclass
class Simulation:
    """What one workflow set would have done over the window."""

    runs: Counter[RunKey] = field(default_factory=Counter)
    tasks: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(workflow id, task kind) -> tasks that would run."""
    accounts: Counter[AccountOp] = field(default_factory=Counter)
    approvals: Counter[Approval] = field(default_factory=Counter)
    timers_fired: int = 0

    def runs_per_workflow(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for key, count in self.runs.items():
            counts[key.workflow_id] += count
        return counts


@dataclass
class Replay:
    """Both sets' results and what the history could not tell."""

    active: Simulation
    draft: Simulation
    events: int = 0
    """Identity events in the window (planned)."""
    warm_up: int = 0
    """Events before the window (state only)."""
    identities: int = 0
    no_baseline: list[str] = field(default_factory=list)
    """Event ids applied without planning: no earlier state of the identity was read."""
    invalid: list[str] = field(default_factory=list)
    """``event id: reason`` for recorded payloads that are not a profile."""
    redacted: Counter[str] = field(default_factory=Counter)
    """Redacted field -> events in which it was redacted."""


# Replay ---------------------------------------------------------------------------------------


def identity_mapping(identity_id: str, profile: Profile, status: str) -> dict[str, Any]:
    """An identity as planners and timers read it: the profile's fields (absent ones left
    out), ``user_id``/``id``, ``status`` and each free-form attribute as ``attributes.<k>``."""
    data = profile.model_dump(mode="json", exclude_none=True)
    data["user_id"] = identity_id
    data["id"] = identity_id
    data["status"] = status
    for key, value in profile.attributes.items():
        data[ATTRIBUTES_PREFIX + key] = value
    return data


@dataclass
class _Identity:
    profile: Profile
    status: str

    def mapping(self, identity_id: str) -> dict[str, Any]:
        return identity_mapping(identity_id, self.profile, self.status)


@dataclass
class _World:
    """One set's side of a replay: its planner, its timers, its result."""

    planner: Planner
    triggers: Sequence[TimeTrigger]
    result: Simulation = field(default_factory=Simulation)
    timers: dict[str, dict[str, Timer]] = field(default_factory=dict)
    """identity id -> timer id -> timer (every state)."""
    heap: list[tuple[datetime, str, str]] = field(default_factory=list)
    reads: frozenset[str] = frozenset()
    """What this set's timers depend on: their date attributes, the zone, the status."""

    def __post_init__(self) -> None:
        dates = {trigger.attribute for trigger in self.triggers}
        self.reads = frozenset({*dates, "time_zone", "status", "left"})


def replay(
    events: Iterable[HistoryEvent],
    *,
    active: Planner,
    draft: Planner,
    birthright_targets: Callable[[Profile], list[str]],
    since: datetime,
    until: datetime,
    progress: Callable[[int, int], None] | None = None,
    progress_every: int = 10_000,
) -> Replay:
    """Replay ``events`` through both planners (see the module docstring).

    Events at or after ``until`` are ignored; events before ``since`` build state only.
    ``progress(done, total)`` is called every ``progress_every`` events.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be aware datetimes")
    ordered = sorted(
        (event for event in events if event.occurred_at < until),
        key=lambda event: (event.occurred_at, event.record_id),
    )
    worlds = [
        _World(active, list(active.time_triggers())),
        _World(draft, list(draft.time_triggers())),
    ]
    outcome = Replay(active=worlds[0].result, draft=worlds[1].result)
    state: dict[str, _Identity] = {}
    context = _Context(birthright_targets, state, since)
    for done, event in enumerate(ordered, 1):
        for world in worlds:
            _fire_due(world, context, event.occurred_at, inclusive=True)
        _apply(event, worlds, context, outcome)
        if progress is not None and done % progress_every == 0:
            progress(done, len(ordered))
    for world in worlds:
        _fire_due(world, context, until, inclusive=False)
    outcome.identities = len(state)
    return outcome


@dataclass
class _Context:
    birthright_targets: Callable[[Profile], list[str]]
    state: dict[str, _Identity]
    since: datetime


def _apply(event: HistoryEvent, worlds: list[_World], context: _Context, outcome: Replay) -> None:
    identity_id = event.subject
    planned = event.occurred_at >= context.since
    if planned:
        outcome.events += 1
    else:
        outcome.warm_up += 1
    current = context.state.get(identity_id)
    if event.event_type in (topics.USER_CREATED, topics.USER_UPDATED):
        profile = _profile(event, outcome)
        if profile is None:
            return
        status = "active" if current is None else current.status
        if event.event_type == topics.USER_CREATED:
            status = "active"
        after = _Identity(profile, status)
        changed = changed_attributes(current.profile if current else None, profile)
    else:
        if current is None:
            if planned:
                outcome.no_baseline.append(event.event_id)
            return
        status = _STATUS_OF[event.event_type]
        profile = current.profile
        if event.event_type in (topics.USER_DEACTIVATED, topics.USER_REACTIVATED):
            profile = profile.model_copy(update={"active": status == "active"})
        after = _Identity(profile, status)
        changed = changed_attributes(current.profile, profile)
    context.state[identity_id] = after
    before_map = current.mapping(identity_id) if current else None
    after_map = after.mapping(identity_id)
    baseline = current is None and event.event_type != topics.USER_CREATED
    if baseline and planned:
        outcome.no_baseline.append(event.event_id)
    change = Change(
        event_type=event.event_type,
        identity_id=identity_id,
        before=before_map,
        after=after_map,
        changed=changed,
        event_id=event.event_id,
        at=event.occurred_at,
    )
    for world in worlds:
        if planned and not baseline:
            for run in world.planner.runs_for(change):
                _record(world, context, run, event.event_id, event.occurred_at, after.profile)
        _plan_timers(world, context, before_map, after_map, event.occurred_at)


def _profile(event: HistoryEvent, outcome: Replay) -> Profile | None:
    data: dict[str, Any] = {}
    for key, value in event.payload.items():
        if value == REDACTED:
            outcome.redacted[key] += 1
            continue
        data[key] = value
    if isinstance(data.get("attributes"), dict):
        kept = {k: v for k, v in data["attributes"].items() if v != REDACTED}
        for key in data["attributes"].keys() - kept.keys():
            outcome.redacted[ATTRIBUTES_PREFIX + key] += 1
        data["attributes"] = kept
    data.setdefault("user_name", event.subject)
    try:
        return Profile.model_validate({k: v for k, v in data.items() if k in Profile.model_fields})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        outcome.invalid.append(f"{event.event_id}: {where}: {first['msg']}")
        return None


def _plan_timers(
    world: _World,
    context: _Context,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    now: datetime,
) -> None:
    identity_id = str(after["id"])
    # Planning is a reconciliation (idempotent): when nothing a timer depends on changed,
    # it would plan nothing, so the replay does not ask (a mover's update, most of them).
    if before is not None and all(before.get(key) == after.get(key) for key in world.reads):
        return
    mine = world.timers.setdefault(identity_id, {})
    plan = plan_timers(world.triggers, before, after, list(mine.values()), now)
    for timer_id in plan.cancel:
        mine[timer_id] = Timer(mine[timer_id].key, mine[timer_id].fire_at, "cancelled")
    for timer in plan.schedule:
        mine[timer.timer_id] = timer
        heapq.heappush(world.heap, (timer.fire_at, timer.timer_id, identity_id))
    for timer in plan.fire_now:
        _fire(world, context, timer, now)


def _fire_due(world: _World, context: _Context, moment: datetime, *, inclusive: bool) -> None:
    while world.heap and (world.heap[0][0] <= moment if inclusive else world.heap[0][0] < moment):
        fire_at, timer_id, identity_id = heapq.heappop(world.heap)
        timer = world.timers[identity_id].get(timer_id)
        # A moved or cancelled timer left its old heap entry behind: skip it.
        if timer is None or timer.state != "scheduled" or timer.fire_at != fire_at:
            continue
        _fire(world, context, timer, fire_at)


def _fire(world: _World, context: _Context, timer: Timer, at: datetime) -> None:
    identity_id = timer.key.identity_id
    world.timers[identity_id][timer.timer_id] = timer.fired()
    if at < context.since:
        return
    identity = context.state[identity_id]
    world.result.timers_fired += 1
    cause = f"{timer.key.attribute} {timer.key.date_value}"
    for run in world.planner.runs_for_timer(timer, identity.mapping(identity_id), at):
        _record(world, context, run, cause, at, identity.profile)


def _record(
    world: _World,
    context: _Context,
    run: PlannedRunLike,
    cause: str,
    at: datetime,
    profile: Profile,
) -> None:
    result = world.result
    result.runs[RunKey(run.workflow_id, run.identity_id, cause, at.isoformat())] += 1
    for task in run.tasks:
        if task.would_run is False:
            continue
        result.tasks[(run.workflow_id, task.kind)] += 1
        definition = world.planner.task(run.workflow_id, task.task_id)
        if task.kind == "account_saga" and getattr(definition, "saga", None) == "joiner":
            # The joiner saga creates the birthright accounts; the other sagas' steps depend
            # on the accounts held, which a replay of events does not know.
            for target in context.birthright_targets(profile):
                result.accounts[AccountOp(target, "create", run.identity_id)] += 1
        elif task.kind in ACCOUNT_OPS:
            targets = getattr(definition, "targets", ALL)
            names = context.birthright_targets(profile) if targets == ALL else list(targets)
            for target in names:
                result.accounts[AccountOp(target, ACCOUNT_OPS[task.kind], run.identity_id)] += 1
        elif task.kind == "approval":
            approvers = getattr(definition, "approvers", ())
            text = approvers if isinstance(approvers, str) else ",".join(approvers)
            result.approvals[Approval(run.workflow_id, task.task_id, run.identity_id, text)] += 1


# The difference ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowRuns:
    """One workflow's runs in both sets and the runs only one of them starts."""

    active: int
    draft: int
    added: list[RunKey]
    removed: list[RunKey]


@dataclass(frozen=True)
class Diff:
    """What the draft does that the active set does not, and the reverse. Only what differs
    is listed: an empty diff means the draft changes nothing on this history."""

    runs: dict[str, WorkflowRuns]
    tasks: dict[str, dict[str, tuple[int, int]]]
    """workflow id -> task kind -> (active count, draft count), where they differ."""
    accounts: dict[str, dict[str, dict[str, list[str]]]]
    """target -> op -> {"added": identity ids, "removed": identity ids}."""
    approvals_added: list[Approval]
    approvals_removed: list[Approval]

    @property
    def empty(self) -> bool:
        return not (
            self.runs
            or self.tasks
            or self.accounts
            or self.approvals_added
            or self.approvals_removed
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": {
                workflow: {
                    "active": runs.active,
                    "draft": runs.draft,
                    "added": [_run_json(key) for key in runs.added],
                    "removed": [_run_json(key) for key in runs.removed],
                }
                for workflow, runs in self.runs.items()
            },
            "tasks": {
                workflow: {kind: {"active": a, "draft": d} for kind, (a, d) in kinds.items()}
                for workflow, kinds in self.tasks.items()
            },
            "accounts": self.accounts,
            "approvals": {
                "added": [_approval_json(a) for a in self.approvals_added],
                "removed": [_approval_json(a) for a in self.approvals_removed],
            },
        }


def _run_json(key: RunKey) -> dict[str, str]:
    return {"identity_id": key.identity_id, "cause": key.cause, "at": key.at}


def _approval_json(approval: Approval) -> dict[str, str]:
    return {
        "workflow_id": approval.workflow_id,
        "task_id": approval.task_id,
        "identity_id": approval.identity_id,
        "approvers": approval.approvers,
    }


def diff(active: Simulation, draft: Simulation) -> Diff:
    """The difference between the active set's simulation and the draft's."""
    runs: dict[str, WorkflowRuns] = {}
    added, removed = draft.runs - active.runs, active.runs - draft.runs
    active_counts, draft_counts = active.runs_per_workflow(), draft.runs_per_workflow()
    for workflow in sorted(active_counts.keys() | draft_counts.keys()):
        more = sorted(k for k in added.elements() if k.workflow_id == workflow)
        fewer = sorted(k for k in removed.elements() if k.workflow_id == workflow)
        if more or fewer:
            runs[workflow] = WorkflowRuns(
                active_counts[workflow], draft_counts[workflow], more, fewer
            )
    tasks: dict[str, dict[str, tuple[int, int]]] = {}
    for workflow, kind in sorted(active.tasks.keys() | draft.tasks.keys()):
        a, d = active.tasks[(workflow, kind)], draft.tasks[(workflow, kind)]
        if a != d:
            tasks.setdefault(workflow, {})[kind] = (a, d)
    accounts: dict[str, dict[str, dict[str, list[str]]]] = {}
    for side, ops in (
        ("added", draft.accounts - active.accounts),
        ("removed", active.accounts - draft.accounts),
    ):
        for op in sorted(ops.elements()):
            entry = accounts.setdefault(op.target, {}).setdefault(
                op.op, {"added": [], "removed": []}
            )
            entry[side].append(op.identity_id)
    return Diff(
        runs=runs,
        tasks=tasks,
        accounts=dict(sorted(accounts.items())),
        approvals_added=sorted((draft.approvals - active.approvals).elements()),
        approvals_removed=sorted((active.approvals - draft.approvals).elements()),
    )
