"""Workflow definitions: the YAML shape, durations, the loader's file:line errors,
content versions, the holder's reload, the published JSON Schema and the shipped examples."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from accord.orchestrator.workflows import definitions as d
from accord.orchestrator.workflows.durations import Duration, DurationError, parse_duration
from accord.orchestrator.workflows.holder import WorkflowHolder
from accord.orchestrator.workflows.loader import (
    Checks,
    WorkflowError,
    WorkflowErrors,
    load_files,
    load_folder,
    workflow_version,
)
from accord.orchestrator.workflows.schema import REGENERATE, SCHEMA_PATH, main, schema_text
from accord.orchestrator.workflows.shipped import shipped

EXAMPLES = SCHEMA_PATH.parent / "examples"

SHIPPED_IDS = sorted(shipped().workflows)


def _expression(text: str) -> str | None:
    """A stand-in compiler: refuses a tripled operator, as a syntax error with a column."""
    column = text.find("&&&")
    return None if column < 0 else f"syntax error at column {column + 1}"


CHECKS = Checks(_expression)
STRICT = Checks(
    _expression,
    targets={"ldap", "github"},
    entitlements={"payroll/viewer", "wiki/editor"},
    templates={"welcome"},
)


def wf(tasks: str, trigger: str = "{event: user.created}", extra: str = "") -> str:
    return (
        "id: sample\ncategory: custom\ndescription: A sample.\n"
        f"trigger: {trigger}\n{extra}tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  ")
    )


def load_one(text: str, checks: Checks = CHECKS) -> d.Workflow:
    return load_files({"sample.yaml": text}, checks)["sample"].definition


def errors_of(files: dict[str, str], checks: Checks = CHECKS) -> list[WorkflowError]:
    with pytest.raises(WorkflowErrors) as caught:
        load_files(files, checks)
    return caught.value.errors


ONE_TASK = "- {id: go, task: revoke_sessions}\n"


# Durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "seconds", "canonical"),
    [
        ("P7D", 7, 0, "P7D"),
        ("-P7D", -7, 0, "-P7D"),
        ("PT8H", 0, 8 * 3600, "PT8H"),
        ("P1DT2H30M", 1, 9000, "P1DT2H30M"),
        ("-PT30M", 0, -1800, "-PT30M"),
        ("P2W", 14, 0, "P14D"),
        ("PT90M", 0, 5400, "PT1H30M"),
        ("PT24H", 0, 86400, "PT24H"),
        ("PT0S", 0, 0, "PT0S"),
        ("PT5S", 0, 5, "PT5S"),
    ],
)
def test_durations_parse_to_days_and_seconds_with_a_canonical_text(
    text: str, days: int, seconds: int, canonical: str
) -> None:
    duration = parse_duration(text)
    assert (duration.days, duration.seconds) == (days, seconds)
    assert str(duration) == canonical
    assert parse_duration(canonical) == duration
    assert duration.as_timedelta() == timedelta(days=days, seconds=seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("P1M", "months are not a fixed length"),
        ("P1Y", "months are not a fixed length"),
        ("-P1Y2M", "months are not a fixed length"),
        ("PT1.5H", "fractions are not supported"),
        ("P", "not an ISO 8601 duration"),
        ("PT", "not an ISO 8601 duration"),
        ("7D", "not an ISO 8601 duration"),
        ("P1W2D", "not an ISO 8601 duration"),
        ("", "not an ISO 8601 duration"),
    ],
)
def test_durations_refuse_what_is_not_a_fixed_whole_duration(text: str, reason: str) -> None:
    with pytest.raises(DurationError, match=reason):
        parse_duration(text)


def test_a_day_is_kept_apart_from_24_hours() -> None:
    assert parse_duration("P1D") != parse_duration("PT24H")
    assert parse_duration("P1D").as_timedelta() == parse_duration("PT24H").as_timedelta()
    assert parse_duration("-P1D").negative
    assert not parse_duration("P1D").negative


# Triggers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "kind", "check"),
    [
        ("{event: user.created}", d.EventTrigger, lambda t: t.event == "user.created"),
        (
            "{event: user.updated, changed: [department, manager_id, attributes.site]}",
            d.EventTrigger,
            lambda t: t.changed == ("department", "manager_id", "attributes.site"),
        ),
        ("{event: user.deleted}", d.EventTrigger, lambda t: t.event == "user.deleted"),
        (
            "{at: hire_date, offset: -P7D}",
            d.DateTrigger,
            lambda t: t.at == "hire_date" and t.offset == Duration(days=-7),
        ),
        ("{at: attributes.contract_end}", d.DateTrigger, lambda t: t.offset == Duration()),
        (
            '{schedule: "0 6 * * 1-5"}',
            d.ScheduleTrigger,
            lambda t: t.schedule == "0 6 * * 1-5",
        ),
        ('{schedule: "*/15 0-6,22 1 JAN-mar sun"}', d.ScheduleTrigger, lambda t: True),
        ("{on_demand: true}", d.OnDemandTrigger, lambda t: t.on_demand is True),
    ],
)
def test_every_trigger_kind_parses(trigger: str, kind: type, check: object) -> None:
    parsed = load_one(wf(ONE_TASK, trigger)).trigger
    assert isinstance(parsed, kind)
    assert check(parsed)  # type: ignore[operator]


def test_event_triggers_are_the_identity_events_of_the_contract() -> None:
    from accord.events import topics

    assert d.EVENT_TYPES == topics.USER_TOPICS
    for event in topics.USER_TOPICS:
        assert load_one(wf(ONE_TASK, f"{{event: {event}}}")).trigger.event == event  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("trigger", "reason"),
    [
        ("{event: group.created}", "'group.created' is not an identity event"),
        ("{event: user.created, changed: [department]}", "changed: applies to user.updated"),
        ("{event: user.updated, changed: [departmnet]}", "'departmnet' is not an identity"),
        ("{at: start}", "String should match pattern"),
        ("{at: hire_date, offset: P1M}", "months are not a fixed length"),
        ('{schedule: "0 6 * *"}', "it needs 5 fields"),
        ('{schedule: "0 24 * * *"}', "hour: 24 is outside 0-23"),
        ('{schedule: "0 6 * * 1-5/0"}', "step '0' is not a positive number"),
        ("{on_demand: false}", "Input should be True"),
        ("{when: later}", "a trigger needs one of the keys event, at, schedule or on_demand"),
        ("{event: user.created, at: hire_date}", "trigger.at: unknown key"),
    ],
)
def test_bad_triggers_say_why_on_the_trigger_line(trigger: str, reason: str) -> None:
    (error,) = errors_of({"t.yaml": wf(ONE_TASK, trigger)})
    assert error.file == "t.yaml"
    assert error.line == 4
    assert reason in error.message


# Tasks ------------------------------------------------------------------------------------

ALL_TASKS = """\
- {id: create, task: create_accounts, disabled: true}
- {id: create_some, task: create_accounts, targets: [ldap, github]}
- {id: update, task: update_accounts}
- {id: enable, task: enable_accounts, targets: [ldap]}
- {id: disable, task: disable_accounts}
- {id: delete, task: delete_accounts, targets: all}
- {id: join, task: add_group, target: ldap, group: staff}
- {id: leave, task: remove_group, target: github, group: contractors}
- {id: ask, task: request_entitlement, entitlement: payroll/viewer, justification: Payroll clerk}
- {id: drop, task: revoke_entitlement, entitlements: [wiki/editor]}
- {id: drop_rest, task: revoke_entitlement, entitlements: all, unless_allowed: true}
- id: approve
  task: approval
  approvers: [manager, "group:it-admins"]
  reason: Keep access?
  timeout: P7D
  on_timeout: escalate
  escalate_to: "user:security-officer"
  on_reject: continue
- {id: mfa, task: require_mfa_enrolment}
- {id: tap, task: temporary_access_pass, lifetime: P1D, deliver_to: identity, one_time: false}
- {id: sessions, task: revoke_sessions}
- {id: mail, task: send_email, to: [manager, it@example.com], template: welcome}
- id: mail_inline
  task: send_email
  to: identity
  subject: "Welcome {display_name}"
  body: "Hello {display_name}, {{braces}} stay."
- id: hook
  task: call_extension
  url: https://hooks.example.com/x
  secret_env: HOOK_SECRET
  wait_for_callback: true
  timeout: PT4H
- id: pause
  task: wait
  duration: PT10S
  when: vars.hook.done && vars.approve.approved
  continue_on_error: true
  retry: {max_attempts: 3, backoff: PT1M}
- {id: until, task: wait, until: leave_date, offset: -PT8H}
"""


def test_every_task_kind_parses_with_its_own_fields() -> None:
    workflow = load_one(wf(ALL_TASKS), STRICT)
    tasks = {task.id: task for task in workflow.tasks}
    # account_saga is alone in its workflow (test_an_account_saga_is_alone_on_its_event).
    assert {task.task for task in workflow.tasks} == set(d.TASK_KINDS) - {"account_saga"}
    assert tasks["create"].disabled is True  # type: ignore[union-attr]
    assert tasks["create"].targets == "all"  # type: ignore[union-attr]
    assert tasks["create_some"].targets == ("ldap", "github")  # type: ignore[union-attr]
    assert tasks["join"].group == "staff"  # type: ignore[union-attr]
    assert tasks["drop_rest"].unless_allowed is True  # type: ignore[union-attr]
    approve = tasks["approve"]
    assert isinstance(approve, d.Approval)
    assert approve.approvers == ("manager", "group:it-admins")
    assert approve.timeout == Duration(days=7)
    tap = tasks["tap"]
    assert isinstance(tap, d.TemporaryAccessPass)
    assert (tap.lifetime, tap.deliver_to, tap.one_time) == (Duration(days=1), "identity", False)
    assert tasks["mail"].recipients == ("manager", "it@example.com")  # type: ignore[union-attr]
    assert tasks["mail_inline"].recipients == ("identity",)  # type: ignore[union-attr]
    hook = tasks["hook"]
    assert isinstance(hook, d.CallExtension)
    assert (hook.secret_env, hook.wait_for_callback, hook.timeout) == (
        "HOOK_SECRET",
        True,
        Duration(seconds=4 * 3600),
    )
    pause = tasks["pause"]
    assert pause.continue_on_error is True
    assert pause.retry == d.Retry(max_attempts=3, backoff=Duration(seconds=60))
    assert tasks["until"].offset == Duration(seconds=-8 * 3600)  # type: ignore[union-attr]
    assert (workflow.time_zone, workflow.enabled, workflow.scope) == ("UTC", True, None)


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ("{id: a, task: approval, approvers: boss, timeout: P1D}", "'boss' is not an approver"),
        (
            "{id: a, task: approval, approvers: manager, timeout: P1D, on_timeout: escalate}",
            "escalate_to is needed with, and only with, on_timeout: escalate",
        ),
        ("{id: a, task: approval, approvers: manager, timeout: -P1D}", "must be longer than zero"),
        ("{id: a, task: temporary_access_pass, lifetime: PT30M}", "between PT1H and P30D"),
        ("{id: a, task: send_email, to: manager}", "either a template, or a subject and a body"),
        ("{id: a, task: send_email, to: someone, template: x}", "String should match pattern"),
        (
            '{id: a, task: send_email, to: manager, subject: "{user.name}", body: b}',
            "placeholder {user.name} is not a plain {name}",
        ),
        (
            "{id: a, task: call_extension, url: https://x.example, secret_env: S,"
            " wait_for_callback: true}",
            "wait_for_callback needs a timeout",
        ),
        (
            "{id: a, task: call_extension, url: https://x.example, secret_env: s3cr3t-value}",
            "String should match pattern",
        ),
        ("{id: a, task: wait}", "a wait has either a duration or until"),
        ("{id: a, task: wait, duration: P1D, offset: PT1H}", "offset applies to until only"),
        ("{id: a, task: create_accounts, targets: [ldap, ldap]}", "'ldap' is listed twice"),
        ("{id: a, task: create_accounts, targets: alll}", "Input should be 'all'"),
        ("{id: a, task: revoke_entitlement, entitlements: [payroll]}", "String should match"),
        ("{id: Bad-Id, task: revoke_sessions}", "String should match pattern"),
    ],
)
def test_bad_tasks_say_why_on_their_line(task: str, reason: str) -> None:
    (error,) = errors_of({"t.yaml": wf(f"- {ONE_TASK[2:]}- {task}\n")})
    assert error.line == 7, error
    assert error.message.startswith("tasks[1]"), error
    assert reason in error.message


# File, line and reason ---------------------------------------------------------------------

BAD_TASKS = """\
- id: first
  task: create_accounts
- id: second
  task: make_coffee
  strength: 11
"""


def test_a_yaml_syntax_error_names_its_line() -> None:
    text = wf(ONE_TASK) + "  - {id: broken, task: [wait\n"
    (error,) = errors_of({"broken.yaml": text})
    assert error.file == "broken.yaml"
    assert error.line == 8  # where the parser found the problem: the end of the file
    assert error.message.startswith("YAML syntax:")


def test_an_unknown_task_kind_names_the_line_of_its_task_key() -> None:
    (error,) = errors_of({"t.yaml": wf(BAD_TASKS)})
    assert error == WorkflowError("t.yaml", 9, error.message)
    assert error.message.startswith("tasks[1].task: unknown task 'make_coffee'; the library has")
    assert "create_accounts" in error.message


def test_a_bad_duration_names_its_line_and_says_why() -> None:
    text = wf("- id: hold\n  task: wait\n  duration: P1M\n")
    (error,) = errors_of({"t.yaml": text})
    assert (error.line, error.message) == (
        8,
        "tasks[0].duration: 'P1M': years and months are not a fixed length;"
        " write days instead (P30D, P365D)",
    )


def test_a_duplicate_task_id_names_the_second_one() -> None:
    text = wf("- id: same\n  task: revoke_sessions\n- id: same\n  task: disable_accounts\n")
    (error,) = errors_of({"t.yaml": text})
    assert error.line == 8
    assert "task id 'same' is used twice (tasks 0 and 1)" in error.message


def test_a_bad_expression_is_reported_by_the_injected_checker_on_its_line() -> None:
    text = wf(
        "- id: go\n  task: revoke_sessions\n  when: identity.active &&& true\n",
        extra='scope: identity.department == "Sales" &&& true\n',
    )
    errors = errors_of({"t.yaml": text})
    assert [(e.line, e.message) for e in errors] == [
        (5, "scope: bad expression: syntax error at column 32"),
        (9, "tasks[0].when: bad expression: syntax error at column 17"),
    ]


def test_unknown_targets_entitlements_and_templates_are_refused_by_line() -> None:
    tasks = """\
- id: create
  task: create_accounts
  targets:
    - ldap
    - mainframe
- {id: group, task: add_group, target: sap, group: staff}
- {id: ask, task: request_entitlement, entitlement: payroll/admin, justification: x}
- {id: mail, task: send_email, to: manager, template: farewell}
"""
    errors = errors_of({"t.yaml": wf(tasks)}, STRICT)
    assert [(e.line, e.message) for e in errors] == [
        (10, "tasks[0].targets[1]: unknown target 'mainframe' (known: github, ldap)"),
        (11, "tasks[1].target: unknown target 'sap' (known: github, ldap)"),
        (
            12,
            "tasks[2].entitlement: unknown entitlement 'payroll/admin'"
            " (known: payroll/viewer, wiki/editor)",
        ),
        (13, "tasks[3].template: unknown mail template 'farewell' (known: welcome)"),
    ]
    # Without the platform's names (None), the same file loads.
    assert load_one(wf(tasks), CHECKS).id == "sample"


def test_vars_must_name_an_earlier_task() -> None:
    tasks = (
        "- {id: first, task: revoke_sessions, when: vars.later.ok}\n"
        "- {id: later, task: wait, duration: PT1S}\n"
    )
    (error,) = errors_of({"t.yaml": wf(tasks)})
    assert (error.line, error.message) == (
        6,
        "tasks[0].when: vars.later is not the id of an earlier task",
    )


def test_missing_and_unknown_keys_duplicate_keys_and_ids_across_files() -> None:
    files = {
        "a.yaml": wf(ONE_TASK),
        "b.yaml": wf(ONE_TASK),  # same id as a.yaml
        "c.yaml": "id: c\ncategory: custom\ndescription: x\n"
        "trigger: {on_demand: true}\ntasks: []\n",
        "d.yaml": wf(ONE_TASK).replace("id: sample", "id: d") + "colour: blue\n",
        "e.yaml": wf(ONE_TASK).replace("id: sample", "id: e") + "enabled: true\nenabled: false\n",
        "f.yaml": "- just\n- a list\n",
        "g.yaml": "",
        "h.yaml": "id: h\ncategory: custom\ndescription: x\ntasks:\n"
        + textwrap.indent(ONE_TASK, "  "),
    }
    errors = [(e.file, e.line, e.message) for e in errors_of(files)]
    assert errors == [
        ("b.yaml", 1, "id: workflow id 'sample' is already used by a.yaml:1"),
        ("c.yaml", 5, "tasks: Tuple should have at least 1 item after validation, not 0"),
        ("d.yaml", 7, "colour: unknown key"),
        ("e.yaml", 8, "enabled: duplicate key (first on line 7)"),
        ("f.yaml", 1, "a workflow file holds one mapping (id, trigger, tasks...)"),
        ("g.yaml", 1, "the file is empty: a workflow file holds one workflow"),
        ("h.yaml", 1, "(workflow): missing key 'trigger'"),
    ]


def test_load_folder_reads_yaml_and_yml_names_paths_and_ignores_other_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "one.yaml").write_text(wf(ONE_TASK).replace("id: sample", "id: one"))
    (tmp_path / "two.yml").write_text(wf(ONE_TASK).replace("id: sample", "id: two"))
    (tmp_path / "notes.md").write_text("not a workflow")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "three.yaml").write_text("broken: [")
    loaded = load_folder(tmp_path, CHECKS)
    assert sorted(loaded.workflows) == ["one", "two"]
    assert loaded["two"].source == str(tmp_path / "two.yml")
    (tmp_path / "bad.yaml").write_text("id: [")
    with pytest.raises(WorkflowErrors) as caught:
        load_folder(tmp_path, CHECKS)
    assert str(caught.value).startswith(f"{tmp_path / 'bad.yaml'}:1: YAML syntax:")
    with pytest.raises(WorkflowErrors, match="not a directory"):
        load_folder(tmp_path / "missing", CHECKS)


# Versions ---------------------------------------------------------------------------------

BASE = """\
id: v
category: joiner
description: Versioned.
trigger: {at: hire_date, offset: -P7D}
tasks:
  - {id: create, task: create_accounts, disabled: true}
"""
REORDERED = """\
# A comment, keys in another order, a default spelt out, a duration written differently.
tasks:
  - task: create_accounts   # same task
    disabled: true
    id: create
    targets: all
enabled: true
trigger: {offset: -P1W, at: hire_date}
description: Versioned.
category: joiner
id: v
time_zone: UTC
"""


def version_of(text: str) -> str:
    return load_files({"v.yaml": text}, CHECKS)["v"].version


def test_the_version_follows_the_content_not_the_spelling() -> None:
    version = version_of(BASE)
    assert len(version) == 12
    assert int(version, 16) >= 0
    assert version_of(REORDERED) == version
    assert version_of(BASE.replace("-P7D", "-P6D")) != version
    assert version_of(BASE.replace("disabled: true", "disabled: false")) != version
    assert version_of(BASE + "enabled: false\n") != version
    assert workflow_version(load_files({"v.yaml": BASE}, CHECKS)["v"].definition) == version


# The holder -------------------------------------------------------------------------------


def test_the_holder_keeps_the_last_good_set_and_picks_up_a_good_edit(tmp_path: Path) -> None:
    loads: list[int] = []

    def checks() -> Checks:
        loads.append(1)
        return CHECKS

    (tmp_path / "v.yaml").write_text(BASE)
    holder = WorkflowHolder(tmp_path, checks)
    first = holder.current()
    assert first["v"].version == version_of(BASE)
    assert len(loads) == 1

    # An unchanged folder is not parsed again.
    assert not holder.changed()
    assert holder.reload_if_changed() is None
    assert holder.reload() == ()
    assert holder.current() is first
    assert len(loads) == 1

    # A bad edit is refused: the errors are returned, the good set stays.
    (tmp_path / "v.yaml").write_text(BASE.replace("-P7D", "P1M"))
    assert holder.changed()
    errors = holder.reload_if_changed()
    assert errors is not None
    assert len(errors) == 1
    assert errors[0].file == str(tmp_path / "v.yaml")
    assert errors[0].line == 4
    assert "months are not a fixed length" in errors[0].message
    assert holder.current() is first
    assert holder.last_errors == errors
    assert holder.status()["last_errors"] == [str(errors[0])]
    assert not holder.changed()  # the refused content is not retried until it changes

    # A good edit is put in force.
    (tmp_path / "v.yaml").write_text(BASE.replace("-P7D", "-P3D"))
    (tmp_path / "other.yaml").write_text(wf(ONE_TASK))
    assert holder.reload_if_changed() == ()
    current = holder.current()
    assert sorted(current.workflows) == [*SHIPPED_IDS, "sample", "v"]
    assert current["v"].definition.trigger == d.DateTrigger(at="hire_date", offset=Duration(-3))
    assert current["v"].version != first["v"].version
    assert not holder.last_errors
    assert holder.status()["workflows"] == current.versions()


def test_the_holder_refuses_to_start_on_a_bad_folder(tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text("id: [")
    with pytest.raises(WorkflowErrors, match="YAML syntax"):
        WorkflowHolder(tmp_path, CHECKS)


async def test_the_holder_watches_the_folder(tmp_path: Path) -> None:
    import asyncio

    (tmp_path / "v.yaml").write_text(BASE)
    holder = WorkflowHolder(tmp_path, CHECKS)
    stopping = asyncio.Event()
    watching = asyncio.create_task(holder.watch(stopping, every_s=0.01))
    (tmp_path / "v.yaml").write_text(BASE.replace("-P7D", "-P2D"))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if holder.current()["v"].version != version_of(BASE):
            break
    stopping.set()
    await watching
    assert holder.current()["v"].version == version_of(BASE.replace("-P7D", "-P2D"))


# The schema and the examples -----------------------------------------------------------------


def test_the_schema_file_is_what_the_models_give() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), (
        f"{SCHEMA_PATH.name} is out of date; regenerate it with: {REGENERATE}"
    )
    assert main(["--check"]) == 0


def test_the_schema_check_fails_on_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "workflow.schema.json"
    stale.write_text("{}\n")
    assert main(["--check", "--output", str(stale)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main(["--output", str(stale)]) == 0
    assert stale.read_text() == schema_text()


def test_the_schema_accepts_the_examples_and_refuses_what_the_models_refuse() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$id"] == "urn:accord:workflows:workflow:v1"
    assert schema["title"]
    assert schema["description"]
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert not list(validator.iter_errors(yaml.safe_load(path.read_text()))), path
    everything = yaml.safe_load(wf(ALL_TASKS))
    assert not list(validator.iter_errors(everything))
    for bad in (
        {**everything, "colour": "blue"},
        {**everything, "trigger": {"event": "user.created", "offset": "P1D"}},
        {**everything, "tasks": [{"id": "x", "task": "make_coffee"}]},
        {**everything, "tasks": [{"id": "x", "task": "wait", "duration": "P1M"}]},
    ):
        assert list(validator.iter_errors(bad)), bad


def test_the_shipped_examples_load_and_say_what_the_issue_asks() -> None:
    loaded = load_folder(EXAMPLES, CHECKS)
    assert sorted(loaded.workflows) == [
        "contractor-end-date",
        "department-move",
        "leaver",
        "pre-hire",
    ]
    for example in loaded:
        first_line = Path(example.source).read_text().splitlines()[0]
        assert first_line == "# yaml-language-server: $schema=../workflow.schema.json"

    pre_hire = loaded["pre-hire"].definition
    assert pre_hire.trigger == d.DateTrigger(at="hire_date", offset=Duration(days=-7))
    create, first_day, enable, welcome = pre_hire.tasks
    assert isinstance(create, d.CreateAccounts)
    assert create.disabled
    assert isinstance(first_day, d.Wait)
    assert first_day.until == "hire_date"
    assert first_day.offset == Duration(seconds=8 * 3600)
    assert isinstance(enable, d.EnableAccounts)
    assert isinstance(welcome, d.SendEmail)
    assert welcome.recipients == ("manager",)

    contractor = loaded["contractor-end-date"].definition
    assert contractor.trigger == d.DateTrigger(at="leave_date")
    kinds = [task.task for task in contractor.tasks]
    assert (kinds[0], kinds[-1]) == ("disable_accounts", "delete_accounts")
    (retention,) = [task for task in contractor.tasks if isinstance(task, d.Wait)]
    assert retention.duration == Duration(days=30)

    move = loaded["department-move"].definition
    assert move.trigger == d.EventTrigger(event="user.updated", changed=("department",))
    approval, revoke = move.tasks
    assert isinstance(approval, d.Approval)
    assert approval.approvers == "manager"
    assert approval.timeout == Duration(days=7)
    assert isinstance(revoke, d.RevokeEntitlement)
    assert revoke.unless_allowed
    assert revoke.when == "!vars.keep_access.approved"

    leaver = loaded["leaver"].definition
    assert [task.task for task in leaver.tasks] == [
        "disable_accounts",
        "revoke_sessions",
        "send_email",
        "call_extension",
        "wait",
        "delete_accounts",
    ]
    extension = leaver.tasks[3]
    assert isinstance(extension, d.CallExtension)
    assert extension.wait_for_callback
