"""Test cases for workflows: given an identity and a change, which workflows and tasks run.

`accord workflows test FILE` reads a YAML file of cases (`CASES_FORMAT`), runs each through
the matcher (`matching`) with the folder's workflows, and prints `PASS`/`FAIL` per case,
as `accord policy test` does for authz's policies: an administrator who edits a scope or a
`when` sees in CI which joiners, movers and leavers it changes before it is in force.

A case is an identity event (`event: user.updated`, with an optional `previous` profile,
so `changed` is what differs, as the registry computes it) or a time (`time:`): the
identity's timers are planned as the engine plans them (`timers.plan_timers`, in the
identity's zone else the workflow's) and those whose time is exactly that instant fire,
scope checked then. A failing time case lists the identity's timer times, so the right
instant is one copy away.

Expectations: `runs` is exactly the set of workflows that start (`[]`: none), `not_runs`
lists workflows that must not start, `tasks` maps a workflow to exactly the ids of the
tasks that would run, in order (a task whose `when` reads `vars.*` is decided at run
time: it is not listed, and a failure message shows it as undecided).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from accord.events import Profile, topics
from accord.events.errors import describe_validation_error
from accord.orchestrator.domain.identity import changed_attributes
from accord.orchestrator.workflows.cases_format import CASES_FORMAT
from accord.orchestrator.workflows.loader import WorkflowSet
from accord.orchestrator.workflows.matching import (
    IdentityChange,
    Matches,
    runs_for_event,
    runs_for_timer,
    time_triggers,
)
from accord.orchestrator.workflows.timers import Timer, plan_timers
from accord.runtime.config_file import load_yaml_model

__all__ = [
    "CASES_FORMAT",
    "Case",
    "CaseFile",
    "CaseFileError",
    "Expect",
    "Outcome",
    "load_case_file",
    "profile_of",
    "run_case",
    "timers_of",
]


#: Keys of a case's identity that are not profile fields.
_NOT_PROFILE = frozenset({"user_id", "status", "left"})


class CaseFileError(ValueError):
    """A case file that cannot be read or does not follow the format."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _plain_dates(value: Any) -> Any:
    """YAML reads 2027-03-01 as a date: the profile holds dates as the text they came as."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _plain_dates(item) for key, item in value.items()}
    return value


class Expect(_Spec):
    """What a case expects: the workflows that start, those that must not, their tasks."""

    runs: list[str] | None = None
    not_runs: list[str] = Field(default_factory=list)
    tasks: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if self.runs is None and not self.not_runs and not self.tasks:
            raise ValueError("expect needs runs, not_runs or tasks")
        return self


class Case(_Spec):
    """An identity, a change (an event or a time) and what it must start."""

    name: str = Field(min_length=1)
    identity: dict[str, Any]
    previous: dict[str, Any] | None = None
    event: str | None = None
    time: AwareDatetime | None = None
    now: AwareDatetime | None = None
    expect: Expect

    @field_validator("identity", "previous", mode="before")
    @classmethod
    def _dates_as_text(cls, value: Any) -> Any:
        return _plain_dates(value)

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str | None) -> str | None:
        if value is not None and value not in topics.USER_TOPICS:
            raise ValueError(f"{value!r} is not one of {', '.join(topics.USER_TOPICS)}")
        return value

    @model_validator(mode="after")
    def _one_change(self) -> Case:
        if (self.event is None) == (self.time is None):
            raise ValueError("a case has either event or time")
        if self.previous is not None and self.event is None:
            raise ValueError("previous applies to an event case only")
        for which, profile in (("identity", self.identity), ("previous", self.previous)):
            if profile is not None:
                profile_of(profile, self.identity_id, which)
        return self

    @property
    def identity_id(self) -> str:
        """The identity's user_id, else the case's name."""
        return str(self.identity.get("user_id", self.name))


class CaseFile(_Spec):
    """A file of cases."""

    cases: list[Case] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> CaseFile:
        names = [case.name for case in self.cases]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"case names must be unique; repeated: {', '.join(repeated)}")
        return self


def profile_of(identity: Mapping[str, Any], identity_id: str, which: str = "identity") -> Profile:
    """The identity's profile as the events carry it (a misspelt field is an error here,
    not a scope that silently never holds); user_name defaults to the id."""
    fields = {key: value for key, value in identity.items() if key not in _NOT_PROFILE}
    fields.setdefault("user_name", identity_id)
    try:
        return Profile.model_validate(fields)
    except ValidationError as error:
        raise ValueError(f"{which}: {describe_validation_error(error)}") from None


@dataclass(frozen=True)
class Outcome:
    """A case's result: what the matcher said, the timers looked at, and the differences."""

    case: Case
    matches: Matches
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """`PASS  name`, or `FAIL  name: difference; difference`."""
        if self.passed:
            return f"PASS  {self.case.name}"
        return f"FAIL  {self.case.name}: {'; '.join(self.problems)}"


def timers_of(
    workflows: WorkflowSet, identity: Mapping[str, Any], identity_id: str, at: datetime
) -> list[Timer]:
    """Every timer of the identity as planning at `at` computes it (past, due or ahead),
    by time."""
    plan = plan_timers(time_triggers(workflows), None, {**identity, "id": identity_id}, [], at)
    timers = [*plan.fire_now, *plan.schedule]
    timers += [Timer(s.key, s.fire_at) for s in plan.skipped if s.fire_at is not None]
    return sorted(timers, key=lambda timer: (timer.fire_at, timer.key.workflow_id))


def run_case(workflows: WorkflowSet, case: Case, now: datetime | None = None) -> Outcome:
    """Run `case` through the matcher and compare with its expectations."""
    identity_id = case.identity_id
    if case.time is not None:
        at = case.time.astimezone(UTC)
        timers = timers_of(workflows, case.identity, identity_id, at)
        matches = Matches()
        for timer in timers:
            if timer.fire_at == at:
                fired = runs_for_timer(workflows, timer, case.identity, at)
                matches.runs += fired.runs
                matches.skipped += fired.skipped
        problems = _differences(case, matches)
        if problems:
            times = ", ".join(
                f"{t.key.workflow_id} at {t.fire_at:%Y-%m-%dT%H:%M:%SZ}" for t in timers
            )
            problems.append(f"timers of this identity: {times or 'none'}")
        return Outcome(case, matches, problems)
    assert case.event is not None  # one of event or time (checked when loaded)
    moment = case.now or now or datetime.now(UTC)
    after = profile_of(case.identity, identity_id)
    before = None if case.previous is None else profile_of(case.previous, identity_id)
    changed = (
        changed_attributes(before, after) if case.event == topics.USER_UPDATED else frozenset()
    )
    change = IdentityChange(
        case.event, identity_id, case.previous, case.identity, changed, f"case:{case.name}", moment
    )
    matches = runs_for_event(workflows, change, moment)
    return Outcome(case, matches, _differences(case, matches))


def _differences(case: Case, matches: Matches) -> list[str]:
    expect = case.expect
    ran = {run.workflow_id: run for run in matches.runs}
    why_not = {skip.workflow_id: skip.reason for skip in matches.skipped}
    problems: list[str] = []
    if expect.runs is not None and set(expect.runs) != set(ran):
        problems.append(f"expected runs {_listed(sorted(expect.runs))}, got {_listed(ran)}")
        problems += [
            f"{workflow_id} skipped: {why_not[workflow_id]}"
            for workflow_id in sorted(set(expect.runs) - set(ran))
            if workflow_id in why_not
        ]
    for workflow_id in expect.not_runs:
        if workflow_id in ran:
            problems.append(f"{workflow_id} runs, expected not to")
    for workflow_id, tasks in expect.tasks.items():
        run = ran.get(workflow_id)
        if run is None:
            reason = why_not.get(workflow_id, "its trigger does not match")
            problems.append(
                f"{workflow_id} does not run ({reason}), expected tasks {_listed(tasks)}"
            )
            continue
        if run.running_tasks != tasks:
            undecided = [task.task_id for task in run.tasks if task.would_run is None]
            later = f" (decided at run time: {_listed(undecided)})" if undecided else ""
            problems.append(
                f"{workflow_id}: expected tasks {_listed(tasks)},"
                f" got {_listed(run.running_tasks)}{later}"
            )
    return problems


def _listed(names: Sequence[str] | Mapping[str, Any]) -> str:
    return "[" + ", ".join(sorted(names) if isinstance(names, Mapping) else names) + "]"


def load_case_file(path: Path) -> CaseFile:
    """Parse a case file.

    :raises CaseFileError: naming the file and the problem.
    """
    return load_yaml_model(path, CaseFile, CaseFileError)
