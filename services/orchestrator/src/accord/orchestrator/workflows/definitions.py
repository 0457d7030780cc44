"""Workflow definitions: what a lifecycle workflow file says, as immutable pydantic models.

A workflow file (YAML, one workflow per file) names a workflow, the trigger that starts
it, the identities it is for (``scope``, an expression) and its tasks, in order::

    id: pre-hire
    category: joiner
    description: Accounts ready, disabled, a week before the first day.
    trigger: {at: hire_date, offset: -P7D}
    scope: identity.employee_type == "employee"
    tasks:
      - {id: create, task: create_accounts, disabled: true}
      - {id: first_day, task: wait, until: hire_date, offset: PT8H}
      - {id: enable, task: enable_accounts}

The models only check what a file can say on its own (shapes, names, durations, cron
fields, time zones). What depends on the running platform (known targets, entitlements,
mail templates, expressions that compile) is checked by the loader through injected
checkers, so these models import nothing but the event contract.

Every model is frozen and forbids unknown keys: a misspelt key is an error at load, not
a silently ignored setting. The JSON Schema editors use is generated from these models
(:mod:`accord.orchestrator.workflows.schema`).
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, ClassVar, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from accord.events import Profile, topics
from accord.orchestrator.workflows.durations import Duration

__all__ = [
    "ALL",
    "CATEGORIES",
    "EVENT_TYPES",
    "SAGA_EVENTS",
    "TASK_KINDS",
    "AccountSaga",
    "AddGroup",
    "Approval",
    "CallExtension",
    "CreateAccounts",
    "DateTrigger",
    "DeleteAccounts",
    "DisableAccounts",
    "EnableAccounts",
    "EventTrigger",
    "OnDemandTrigger",
    "RemoveGroup",
    "RequestEntitlement",
    "RequireMfaEnrolment",
    "Retry",
    "RevokeEntitlement",
    "RevokeSessions",
    "ScheduleTrigger",
    "SendEmail",
    "Task",
    "TemporaryAccessPass",
    "Trigger",
    "UpdateAccounts",
    "Wait",
    "Workflow",
]

ALL: Literal["all"] = "all"
CATEGORIES = ("joiner", "mover", "leaver", "custom")
#: Identity events a workflow can start on: an identity's life cycle, nothing else.
EVENT_TYPES: tuple[str, ...] = topics.USER_TOPICS

_NAME = r"[A-Za-z0-9][A-Za-z0-9._:@+-]*"
_STAGE = re.compile(rf"^(manager|group:{_NAME}|user:{_NAME})$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Names ----------------------------------------------------------------------------------

WorkflowId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$"),
    Field(description="Lower-case slug, unique across the folder: pre-hire, leaver."),
]
TaskId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$"),
    Field(
        description=(
            "Unique in the workflow; snake_case so that later expressions can read the"
            " task's outputs as vars.<task id>.<name>."
        )
    ),
]
Expression = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    Field(description="An expression (CEL) over the identity, checked when the file loads."),
]
TargetName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=rf"^{_NAME}$")]
EntitlementName = Annotated[
    str,
    StringConstraints(max_length=257, pattern=rf"^{_NAME}/{_NAME}$"),
    Field(description="application/entitlement, as in the authz catalogue: payroll/viewer."),
]
TemplateName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
DateAttribute = Annotated[
    str,
    StringConstraints(
        max_length=128, pattern=r"^([a-z][a-z0-9_]*_date|attributes\.[A-Za-z0-9][A-Za-z0-9._-]*)$"
    ),
    Field(
        description=(
            "A date attribute of the identity: a profile field whose name ends in _date"
            " (hire_date, leave_date) or a custom attribute (attributes.contract_end)."
        )
    ),
]


def _check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise PydanticCustomError(
            "time_zone", "'{name}' is not an IANA time zone (Europe/Paris, UTC)", {"name": name}
        ) from error
    return name


TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_check_time_zone),
    Field(description="IANA time zone name, used when the identity has none."),
]


def _positive(duration: Duration) -> Duration:
    if duration.total_seconds() <= 0:
        raise PydanticCustomError(
            "duration_positive", "{value} must be longer than zero", {"value": str(duration)}
        )
    return duration


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def _stage(value: str) -> str:
    if not _STAGE.match(value):
        raise PydanticCustomError(
            "approver",
            "'{value}' is not an approver: manager, group:<group id> or user:<user id>",
            {"value": value},
        )
    return value


Approver = Annotated[
    str,
    AfterValidator(_stage),
    WithJsonSchema({"type": "string", "pattern": _STAGE.pattern}),
    Field(description="As in authz approval chains: manager, group:<group id>, user:<user id>."),
]


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise PydanticCustomError("duplicate", "'{value}' is listed twice", {"value": value})
        seen.add(value)
    return values


Targets = (
    Literal["all"] | Annotated[tuple[TargetName, ...], Field(min_length=1), AfterValidator(_unique)]
)
Entitlements = (
    Literal["all"]
    | Annotated[tuple[EntitlementName, ...], Field(min_length=1), AfterValidator(_unique)]
)


# Cron -----------------------------------------------------------------------------------

_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    ),
    ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + low
    if not text.isdigit():
        raise ValueError(f"'{text}' is not a number")
    return int(text)


def _check_cron_item(item: str, field: tuple[str, int, int, Any]) -> None:
    name, low, high, names = field
    base, _, step = item.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        raise ValueError(f"{name}: step '{step}' is not a positive number")
    if base == "*":
        return
    first, _, last = base.partition("-")
    bounds = [_cron_value(first, low, names)] + ([_cron_value(last, low, names)] if last else [])
    for value in bounds:
        if not low <= value <= high:
            raise ValueError(f"{name}: {value} is outside {low}-{high}")
    if last and bounds[0] > bounds[1]:
        raise ValueError(f"{name}: range '{base}' runs backwards")


def _check_cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) != len(_CRON_FIELDS):
        raise PydanticCustomError(
            "cron",
            "'{value}' is not a cron schedule: it needs 5 fields"
            " (minute hour day-of-month month day-of-week), it has {count}",
            {"value": expression, "count": len(fields)},
        )
    for text, field in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            try:
                _check_cron_item(item, field)
            except ValueError as error:
                raise PydanticCustomError(
                    "cron", "'{value}': {reason}", {"value": expression, "reason": str(error)}
                ) from error
    return " ".join(fields)


Cron = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_check_cron),
    Field(description="Cron schedule, 5 fields: minute hour day-of-month month day-of-week."),
]


# Triggers -------------------------------------------------------------------------------


def _profile_field(name: str) -> str:
    if name.startswith("attributes.") and len(name) > len("attributes."):
        return name
    if name not in Profile.model_fields or name == "attributes":
        known = ", ".join(sorted(set(Profile.model_fields) - {"attributes"}))
        raise PydanticCustomError(
            "attribute",
            "'{name}' is not an identity attribute; known: {known}, or attributes.<name>",
            {"name": name, "known": known},
        )
    return name


ProfileAttribute = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9._-]+)?$"
    ),
    AfterValidator(_profile_field),
]


def _event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise PydanticCustomError(
            "event_type",
            "'{value}' is not an identity event; a workflow starts on one of {known}",
            {"value": value, "known": ", ".join(EVENT_TYPES)},
        )
    return value


class EventTrigger(_Model):
    """Start on an identity event; for ``user.updated``, optionally only when some
    attributes changed (a mover: ``changed: [department, manager_id]``)."""

    kind: ClassVar[str] = "EventTrigger"
    event: Annotated[
        str,
        Field(json_schema_extra={"enum": list(EVENT_TYPES)}),
        AfterValidator(_event_type),
    ]
    changed: Annotated[tuple[ProfileAttribute, ...], AfterValidator(_unique)] = ()

    @model_validator(mode="after")
    def _changed_needs_update(self) -> EventTrigger:
        if self.changed and self.event != topics.USER_UPDATED:
            raise PydanticCustomError(
                "changed_without_update",
                "changed: applies to user.updated only (a {event} changes no attribute)",
                {"event": self.event},
            )
        return self


class DateTrigger(_Model):
    """Start at a time relative to a date attribute of the identity.

    The date is a day in the identity's time zone (else the workflow's); ``offset``
    moves from that day's midnight: ``-P7D`` a week before, ``PT8H`` at 08:00 that day.
    """

    kind: ClassVar[str] = "DateTrigger"
    at: DateAttribute
    offset: Duration = Duration()


class ScheduleTrigger(_Model):
    """Start on a cron schedule (in the workflow's time zone) for every identity in scope."""

    kind: ClassVar[str] = "ScheduleTrigger"
    schedule: Cron


class OnDemandTrigger(_Model):
    """Start only when asked (API or CLI), for one identity or for a scope."""

    kind: ClassVar[str] = "OnDemandTrigger"
    on_demand: Literal[True]


_TRIGGER_KEYS = (
    ("event", "EventTrigger"),
    ("at", "DateTrigger"),
    ("schedule", "ScheduleTrigger"),
    ("on_demand", "OnDemandTrigger"),
)


def _trigger_kind(value: Any) -> str | None:
    """Which trigger a mapping is, by its key: readable YAML needs no ``kind:`` line."""
    if isinstance(value, dict):
        return next((tag for key, tag in _TRIGGER_KEYS if key in value), None)
    return getattr(value, "kind", None)


Trigger = Annotated[
    Annotated[EventTrigger, Tag("EventTrigger")]
    | Annotated[DateTrigger, Tag("DateTrigger")]
    | Annotated[ScheduleTrigger, Tag("ScheduleTrigger")]
    | Annotated[OnDemandTrigger, Tag("OnDemandTrigger")],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger_kind",
        custom_error_message="a trigger needs one of the keys event, at, schedule or on_demand",
    ),
]


# Tasks ----------------------------------------------------------------------------------


class Retry(_Model):
    """How often a failed task is tried again, and how long to wait between tries."""

    max_attempts: Annotated[int, Field(ge=1, le=100)]
    backoff: PositiveDuration = Duration(seconds=30)


class _Task(_Model):
    """What every task has: an id, a condition, what a failure does, a retry policy."""

    id: TaskId
    when: Expression | None = None
    continue_on_error: bool = False
    retry: Retry | None = None


class _AccountsTask(_Task):
    targets: Targets = ALL


class CreateAccounts(_AccountsTask):
    """Create the identity's accounts: all birthright targets, or the named ones."""

    task: Literal["create_accounts"]
    disabled: bool = False


class UpdateAccounts(_AccountsTask):
    """Push the identity's current profile to its accounts."""

    task: Literal["update_accounts"]


class EnableAccounts(_AccountsTask):
    """Enable the identity's accounts (all, or in the named targets)."""

    task: Literal["enable_accounts"]


class DisableAccounts(_AccountsTask):
    """Disable the identity's accounts (all, or in the named targets)."""

    task: Literal["disable_accounts"]


class DeleteAccounts(_AccountsTask):
    """Delete the identity's accounts (all, or in the named targets)."""

    task: Literal["delete_accounts"]


#: The event each account saga runs on (the leaver on deactivation and on deletion).
SAGA_EVENTS: dict[str, tuple[str, ...]] = {
    "joiner": (topics.USER_CREATED,),
    "mover": (topics.USER_UPDATED,),
    "reactivation": (topics.USER_REACTIVATED,),
    "leaver": (topics.USER_DEACTIVATED, topics.USER_DELETED),
}


class AccountSaga(_Task):
    """The account saga of a lifecycle event, as Accord ships it: one step per target,
    planned from the birthright rules and the accounts the identity holds when it begins.

    - ``joiner``: create the birthright accounts; a permanent failure keeps the others or
      rolls them back (``ACCORD_JOINER_ON_FAILURE``); transient failures are retried.
    - ``mover``: update the accounts kept, create those the birthright adds, delete those
      it removes.
    - ``reactivation``: enable every account, create the birthright ones missing.
    - ``leaver``: disable every account (those still being created too), retried until
      every target said yes; on ``user.deleted`` they are deleted after
      ``ACCORD_LEAVER_RETENTION_S``.

    It is its workflow's first task and runs on its event (``SAGA_EVENTS``); ``when``,
    ``retry`` and ``continue_on_error`` do not apply: the saga has its own failure rules.
    Alone, it is the saga and nothing more. Followed by other tasks, the event starts a
    run too: its first task waits for the saga the event started (its end read back), and
    the tasks after it run once the saga completed (a welcome mail once the joiner's
    accounts exist).
    """

    task: Literal["account_saga"]
    saga: Literal["joiner", "mover", "reactivation", "leaver"]

    @model_validator(mode="after")
    def _own_failure_rules(self) -> AccountSaga:
        if self.when is not None or self.retry is not None or self.continue_on_error:
            raise PydanticCustomError(
                "saga_task_options",
                "an account_saga task takes no when, retry or continue_on_error: "
                "the saga has its own failure rules (scope the workflow instead)",
            )
        return self


class AddGroup(_Task):
    """Add the identity's account in ``target`` to ``group``."""

    task: Literal["add_group"]
    target: TargetName
    group: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RemoveGroup(_Task):
    """Remove the identity's account in ``target`` from ``group``."""

    task: Literal["remove_group"]
    target: TargetName
    group: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RequestEntitlement(_Task):
    """Request an entitlement through authz: its policies and approval chain apply.

    The task waits for authz's answer: the grant completes it (``vars.<task id>.grant_id``),
    a refusal by policy or by an approver fails it (not retried; ``continue_on_error``
    applies). ``timeout``: no answer by then fails it too; without one it waits as long as
    authz takes (an approval chain has deadlines of its own there).
    """

    task: Literal["request_entitlement"]
    entitlement: EntitlementName
    justification: Text
    timeout: PositiveDuration | None = None


class RevokeEntitlement(_Task):
    """Revoke entitlements through authz: the named ones, or all the identity holds.

    ``unless_allowed``: revoke only those authz's policies no longer allow for the
    identity as it is now (a mover keeps what the new department may have).
    """

    task: Literal["revoke_entitlement"]
    entitlements: Entitlements
    unless_allowed: bool = False


class Approval(_Task):
    """Ask people to approve before the workflow goes on.

    The outcome is ``vars.<task id>.approved`` (bool) and ``vars.<task id>.decision``
    (approved, rejected, timed_out). A rejection ends the run unless ``on_reject`` is
    ``continue``; a timeout rejects, escalates to ``escalate_to`` for another
    ``timeout``, or continues with decision ``timed_out``.
    """

    task: Literal["approval"]
    approvers: Approver | Annotated[tuple[Approver, ...], Field(min_length=1)]
    reason: Text | None = None
    timeout: PositiveDuration
    on_timeout: Literal["reject", "escalate", "continue"] = "reject"
    escalate_to: Approver | Annotated[tuple[Approver, ...], Field(min_length=1)] | None = None
    on_reject: Literal["stop", "continue"] = "stop"

    @model_validator(mode="after")
    def _escalation(self) -> Approval:
        if (self.on_timeout == "escalate") != (self.escalate_to is not None):
            raise PydanticCustomError(
                "escalation", "escalate_to is needed with, and only with, on_timeout: escalate"
            )
        return self


class RequireMfaEnrolment(_Task):
    """Ask the identity to enrol a second factor (authn)."""

    task: Literal["require_mfa_enrolment"]


_TAP_MIN, _TAP_MAX = 3600, 30 * 86400


def _tap_lifetime(duration: Duration) -> Duration:
    if not _TAP_MIN <= duration.total_seconds() <= _TAP_MAX:
        raise PydanticCustomError(
            "tap_lifetime",
            "a temporary access pass lives between PT1H and P30D, not {value}",
            {"value": str(duration)},
        )
    return duration


class TemporaryAccessPass(_Task):
    """Issue a temporary access pass (authn) and deliver it to the manager or the identity."""

    task: Literal["temporary_access_pass"]
    lifetime: Annotated[Duration, AfterValidator(_tap_lifetime)] = Duration(seconds=8 * 3600)
    one_time: bool = True
    deliver_to: Literal["manager", "identity"] = "manager"


class RevokeSessions(_Task):
    """Revoke the identity's sessions everywhere (CAEP through authn)."""

    task: Literal["revoke_sessions"]


_ADDRESS = r"^[^@\s]+@[^@\s]+$"
Recipient = Annotated[
    str,
    StringConstraints(max_length=254, pattern=rf"^(manager|identity)$|{_ADDRESS}"),
    Field(description="manager, identity (their e-mail) or an e-mail address."),
]


def _placeholders(text: str) -> str:
    """Templates are ``{name}`` substitutions only: no attribute, index, format or code."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise PydanticCustomError(
            "template", "{reason} (write {{ and }} for literal braces)", {"reason": str(error)}
        ) from error
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise PydanticCustomError(
                "placeholder",
                "placeholder {field} is not a plain {name}",
                {
                    "field": "{"
                    + field
                    + (f"!{conversion}" if conversion else "")
                    + (f":{spec}" if spec else "")
                    + "}"
                },
            )
    return text


def _one_line(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise PydanticCustomError("one_line", "a subject is one line")
    return text


class SendEmail(_Task):
    """Send an e-mail: a named template, or a subject and body with ``{placeholders}``."""

    task: Literal["send_email"]
    to: Recipient | Annotated[tuple[Recipient, ...], Field(min_length=1)]
    template: TemplateName | None = None
    subject: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=256),
            AfterValidator(_one_line),
            AfterValidator(_placeholders),
        ]
        | None
    ) = None
    body: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=65536), AfterValidator(_placeholders)
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _content(self) -> SendEmail:
        inline = self.subject is not None or self.body is not None
        if (self.template is None) == (not inline) or (
            inline and (self.subject is None or self.body is None)
        ):
            raise PydanticCustomError(
                "mail_content", "a mail has either a template, or a subject and a body"
            )
        return self

    @property
    def recipients(self) -> tuple[str, ...]:
        """``to`` as a tuple, whether one recipient or several were written."""
        return (self.to,) if isinstance(self.to, str) else self.to


class CallExtension(_Task):
    """Call a custom extension: a signed HTTP request, optionally waiting for a signed callback.

    ``secret_env`` names the environment variable that holds the HMAC secret, so the
    secret never sits in a file in git. The extension's answer (or callback) becomes
    ``vars.<task id>.*`` for later tasks. Waiting needs a ``timeout``: an unbounded wait
    would hold the identity's runs forever.
    """

    task: Literal["call_extension"]
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s/]+[^\s]*$")]
    secret_env: Annotated[
        str,
        StringConstraints(max_length=128, pattern=r"^[A-Z][A-Z0-9_]*$"),
        Field(description="Name of the environment variable holding the HMAC secret."),
    ]
    wait_for_callback: bool = False
    timeout: PositiveDuration | None = None

    @model_validator(mode="after")
    def _bounded_wait(self) -> CallExtension:
        if self.wait_for_callback and self.timeout is None:
            raise PydanticCustomError(
                "callback_timeout", "wait_for_callback needs a timeout (P3D, PT4H)"
            )
        return self


class Wait(_Task):
    """Wait for a duration, or until a date attribute (plus an offset) in the identity's zone."""

    task: Literal["wait"]
    duration: PositiveDuration | None = None
    until: DateAttribute | None = None
    offset: Duration | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Wait:
        if (self.duration is None) == (self.until is None):
            raise PydanticCustomError("wait", "a wait has either a duration or until")
        if self.offset is not None and self.until is None:
            raise PydanticCustomError("wait_offset", "offset applies to until only")
        return self


Task = Annotated[
    AccountSaga
    | CreateAccounts
    | UpdateAccounts
    | EnableAccounts
    | DisableAccounts
    | DeleteAccounts
    | AddGroup
    | RemoveGroup
    | RequestEntitlement
    | RevokeEntitlement
    | Approval
    | RequireMfaEnrolment
    | TemporaryAccessPass
    | RevokeSessions
    | SendEmail
    | CallExtension
    | Wait,
    Field(discriminator="task"),
]

#: Every task kind of the library, as ``task:`` spells it.
TASK_KINDS: tuple[str, ...] = tuple(
    get_args(model.model_fields["task"].annotation)[0] for model in get_args(get_args(Task)[0])
)


# The workflow ---------------------------------------------------------------------------


class Workflow(_Model):
    """One lifecycle workflow: when it starts, for whom, and its tasks in order."""

    id: WorkflowId
    category: Literal["joiner", "mover", "leaver", "custom"]
    description: Text
    enabled: bool = True
    trigger: Trigger
    scope: Expression | None = Field(
        default=None, description="Which identities this workflow is for; absent: everyone."
    )
    time_zone: TimeZone = "UTC"
    tasks: Annotated[tuple[Task, ...], Field(min_length=1)]

    @field_validator("tasks")
    @classmethod
    def _unique_task_ids(cls, tasks: tuple[_Task, ...]) -> tuple[_Task, ...]:
        first: dict[str, int] = {}
        for index, task in enumerate(tasks):
            if task.id in first:
                raise PydanticCustomError(
                    "duplicate_task_id",
                    "task id '{task_id}' is used twice (tasks {first} and {index})",
                    {"task_id": task.id, "first": first[task.id], "index": index},
                )
            first[task.id] = index
        return tasks

    @model_validator(mode="after")
    def _saga_alone_on_its_event(self) -> Workflow:
        sagas = [task for task in self.tasks if isinstance(task, AccountSaga)]
        if not sagas:
            return self
        if len(sagas) > 1 or not isinstance(self.tasks[0], AccountSaga):
            raise PydanticCustomError(
                "saga_not_first",
                "an account_saga task must be its workflow's first task, and the only "
                "account_saga of it (other tasks may follow it)",
            )
        events = SAGA_EVENTS[sagas[0].saga]
        trigger = self.trigger
        if not isinstance(trigger, EventTrigger) or trigger.event not in events:
            raise PydanticCustomError(
                "saga_trigger",
                "the {saga} saga runs on {events}: its workflow's trigger must be that event",
                {"saga": sagas[0].saga, "events": " or ".join(events)},
            )
        return self

    @property
    def runs_after_saga(self) -> bool:
        """Whether tasks follow its account saga: then its event starts a run as well."""
        return self.account_saga is not None and len(self.tasks) > 1

    @property
    def account_saga(self) -> str | None:
        """The account saga this workflow runs (its first task), if it runs one."""
        task = self.tasks[0]
        return task.saga if isinstance(task, AccountSaga) else None
