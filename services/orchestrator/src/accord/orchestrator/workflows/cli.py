"""`accord workflows`: validate a folder of workflow files, test it against cases, plan;
simulate a draft on recorded history; list, show, cancel, retry and start runs.

``accord workflows validate [DIR]`` loads the folder as the orchestrator will (schema,
expressions compiled, target names checked against the targets file when one is given)
and prints every problem as ``file:line: reason`` on stderr (exit 1), else one line per
workflow.

``accord workflows test CASES.yaml [...] [--dir DIR]`` runs each case through the matcher
and prints ``PASS``/``FAIL`` per case and a summary, as ``accord policy test`` does: exit 1
if a case fails or the folder is invalid, 2 if a case file is malformed.

``accord workflows plan (--identity-file FILE.json | --identity ID) [--dir DIR] [--at TIME]``
says what a user.created / user.updated of this identity would start now and which of
its timers are due or ahead, in UTC and in the zone they are read in. ``--identity``
reads the identity registry in DATABASE_URL (the orchestrator's tables).

``accord workflows simulate`` is `simulate_cli.py`'s; ``accord workflows runs ...`` and
``accord workflows run WORKFLOW_ID --identity ID...`` are `runs_cli.py`'s.

DIR defaults to ``$ACCORD_WORKFLOWS_DIR``, else the examples shipped with the orchestrator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from accord.events import topics
from accord.events.cli import EXIT_FAILURE, EXIT_USAGE, CliError
from accord.orchestrator.workflows.cases_format import CASES_FORMAT
from accord.orchestrator.workflows.runs_cli import add_runs
from accord.orchestrator.workflows.simulate_cli import add_simulate
from accord.runtime.cli_scaffold import add_action, add_actions, add_json

if TYPE_CHECKING:
    import asyncpg

    from accord.orchestrator.workflows import matching
    from accord.orchestrator.workflows.loader import WorkflowSet


#: The workflows shipped with the orchestrator: the default folder.
EXAMPLES = Path(__file__).parent / "examples"
DIR_VARIABLE = "ACCORD_WORKFLOWS_DIR"
TARGETS_VARIABLE = "ACCORD_TARGETS_FILE"
_SCHEMA = "orchestrator"
_NO_TABLES = "no orchestrator tables in this database: has the orchestrator run?"
_PLAN_EVENTS = (topics.USER_CREATED, topics.USER_UPDATED)


def register_workflows(commands: Any) -> None:
    """Add `accord workflows` to the accord command."""
    actions = add_actions(
        commands,
        "workflows",
        help="validate, test, plan and simulate lifecycle workflows; list and operate runs",
        description="Lifecycle workflows as code (YAML files, one workflow each). DIR "
        f"defaults to ${DIR_VARIABLE}, else the examples shipped with the orchestrator.",
    )
    validate = add_action(
        actions,
        "validate",
        _validate,
        help="load a workflow folder; print each workflow, or every problem as file:line",
        description="Loads every *.yaml/*.yml file of DIR: schema, expressions (CEL) and "
        "vars.<task> references, and target names when a targets file is given. Prints "
        "'file:line: reason' per problem and exits 1, else one line per workflow "
        "(id, version, trigger, tasks).",
    )
    validate.add_argument("folder", nargs="?", type=Path, metavar="DIR", help="workflow folder")
    validate.add_argument(
        "--targets",
        type=Path,
        metavar="FILE",
        help=f"targets file whose names tasks may use (default: ${TARGETS_VARIABLE}, if set)",
    )
    add_json(validate, "print the workflows as one JSON object per line")
    test = add_action(
        actions,
        "test",
        _test,
        help="run YAML test cases through the matcher; fail on any unexpected run or task",
        description="For each case (an identity and an event or a time), which workflows "
        "start and which of their tasks would run, compared with what the case expects.",
        epilog=CASES_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("cases", nargs="+", type=Path, metavar="CASES.yaml", help="case files")
    test.add_argument("--dir", type=Path, metavar="DIR", help="workflow folder")
    plan = add_action(
        actions,
        "plan",
        _plan,
        help="what a created or updated identity would start now, and its timers",
        description="Prints the runs a user.created and a user.updated of the identity "
        "would start (with each task: run, skip, or decided at run time), the workflows "
        "skipped and why, and the identity's timers with their UTC and local times.",
    )
    who = plan.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--identity-file",
        type=Path,
        metavar="FILE.json",
        help="the identity: a JSON object of profile fields with user_id",
    )
    who.add_argument(
        "--identity", metavar="ID", help="read the identity from the registry (DATABASE_URL)"
    )
    plan.add_argument("--dir", type=Path, metavar="DIR", help="workflow folder")
    plan.add_argument(
        "--at",
        type=_moment,
        metavar="TIME",
        help="plan as of this RFC 3339 time (default: now), e.g. 2027-02-22T08:00:00Z",
    )
    add_json(plan, "print the plan as one JSON object")
    add_runs(actions)
    # The replay binds each loaded folder (the draft and the active set) to the matcher
    # (add_simulate's default), so a simulation decides exactly as the engine does.
    add_simulate(actions)


# --- loading ------------------------------------------------------------------------------


def workflows_dir(argument: Path | None) -> Path:
    """The folder: the argument, else $ACCORD_WORKFLOWS_DIR, else the shipped examples."""
    if argument is not None:
        return argument
    configured = os.environ.get(DIR_VARIABLE)
    return Path(configured) if configured else EXAMPLES


def _expression_problem(text: str) -> str | None:
    from accord.orchestrator.workflows.expressions import ExpressionError, compile_condition

    try:
        compile_condition(text)
    except ExpressionError as error:
        return str(error)
    return None


def target_names(path: Path) -> set[str]:
    """The target names of a targets file (the provisioner's format: targets: [{name...}])."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise CliError(f"{path}: {error.strerror}", EXIT_USAGE) from None
    except yaml.YAMLError as error:
        raise CliError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    entries = raw.get("targets") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in entries
    ):
        raise CliError(f"{path}: not a targets file (targets: a list of entries with a name)")
    return {entry["name"] for entry in entries}


def load(folder: Path, targets: Path | None = None) -> WorkflowSet:
    """The folder's workflows with the real checks, or a CliError listing every problem."""
    from accord.orchestrator.workflows.loader import Checks, WorkflowErrors, load_folder
    from accord.orchestrator.workflows.shipped import with_shipped

    if not folder.is_dir():
        raise CliError(f"{folder}: not a directory", EXIT_USAGE)
    checks = Checks(
        expression=_expression_problem,
        targets=target_names(targets) if targets is not None else None,
    )
    try:
        return with_shipped(load_folder(folder, checks))
    except WorkflowErrors as error:
        # Every problem on its own line, as a compiler prints them; then the one error line.
        for problem in error.errors:
            print(problem, file=sys.stderr)
        count = len(error.errors)
        raise CliError(
            f"{count} problem{'' if count == 1 else 's'} in {folder}", EXIT_FAILURE
        ) from None


# --- validate -----------------------------------------------------------------------------


def _is_shipped(source: str) -> bool:
    from accord.orchestrator.workflows.shipped import SHIPPED_DIR

    return Path(source).parent == SHIPPED_DIR


def _validate(args: argparse.Namespace) -> int:
    from accord.orchestrator.workflows import matching

    configured = os.environ.get(TARGETS_VARIABLE)
    targets = args.targets or (Path(configured) if configured else None)
    folder = workflows_dir(args.folder)
    workflows = load(folder, targets)
    for loaded in workflows:
        definition = loaded.definition
        entry = {
            "id": loaded.id,
            "version": loaded.version,
            "enabled": definition.enabled,
            "trigger": matching.describe_trigger(definition),
            "tasks": len(definition.tasks),
            "file": loaded.source,
        }
        if args.json:
            print(json.dumps(entry))
            continue
        disabled = "  (disabled)" if not definition.enabled else ""
        if _is_shipped(loaded.source):
            disabled += "  (shipped)"
        print(
            f"{loaded.id:<24} {loaded.version}  {entry['trigger']:<36} "
            f"{len(definition.tasks)} tasks{disabled}"
        )
    if not args.json:
        count = len(workflows) - sum(1 for loaded in workflows if _is_shipped(loaded.source))
        print(f"ok: {count} workflow{'' if count == 1 else 's'} in {folder}, over the shipped ones")
    return 0


# --- test ---------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    from accord.orchestrator.workflows import cases

    workflows = load(workflows_dir(args.dir))
    try:
        files = [(path, cases.load_case_file(path)) for path in args.cases]
    except cases.CaseFileError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    several = len(files) > 1
    results = [
        (path, cases.run_case(workflows, case)) for path, loaded in files for case in loaded.cases
    ]
    for path, outcome in results:
        print(f"{path}: {outcome.line()}" if several else outcome.line())
    failed = sum(1 for _, outcome in results if not outcome.passed)
    print(f"{len(results) - failed} passed, {failed} failed")
    return EXIT_FAILURE if failed else 0


# --- plan ---------------------------------------------------------------------------------


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset (write Z or +01:00)")
    return moment.astimezone(UTC)


def _identity_from_file(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except OSError as error:
        raise CliError(f"{path}: {error.strerror}", EXIT_USAGE) from None
    except ValueError as error:
        raise CliError(f"{path}: not valid JSON: {error}", EXIT_USAGE) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("user_id"), str):
        raise CliError(f"{path}: an identity is a JSON object with a user_id", EXIT_USAGE)
    return raw


def _identity_from_registry(user_id: str) -> dict[str, Any]:
    from accord.orchestrator.adapters import store
    from accord.runtime.cli_support import run_on_database

    found: dict[str, Any] = {}

    async def work(pool: asyncpg.Pool) -> int:
        entry = await store.get_identity(pool, user_id)
        if entry is None:
            raise CliError(f"identity {user_id} not found")
        found.update(entry["profile"], user_id=entry["user_id"], status=entry["status"])
        return 0

    run_on_database(work, schema=_SCHEMA, no_tables=_NO_TABLES)
    return found


def plan_identity(
    workflows: WorkflowSet, identity: Mapping[str, Any], at: datetime
) -> dict[str, Any]:
    """The plan of `identity` at `at`, as plain data (what --json prints)."""
    from accord.orchestrator.workflows import cases, matching
    from accord.orchestrator.workflows.timing import zone_for

    identity_id = str(identity["user_id"])
    try:
        profile = cases.profile_of(identity, identity_id)
    except ValueError as error:
        raise CliError(f"the identity: {error}", EXIT_USAGE) from None
    events: dict[str, Any] = {}
    for event in _PLAN_EVENTS:
        changed = frozenset(
            name for name, value in profile.model_dump().items() if value not in (None, {})
        )
        change = matching.IdentityChange(
            event,
            identity_id,
            None,
            identity,
            changed if event == topics.USER_UPDATED else frozenset(),
            f"plan:{event}",
            at,
        )
        found = matching.runs_for_event(workflows, change, at)
        events[event] = {
            "runs": [_run_data(run) for run in found.runs],
            "skipped": [{"workflow": s.workflow_id, "reason": s.reason} for s in found.skipped],
        }
    triggers = {trigger.workflow_id: trigger for trigger in matching.time_triggers(workflows)}
    timers = []
    for timer in cases.timers_of(workflows, identity, identity_id, at):
        zone = zone_for(identity, triggers[timer.key.workflow_id].zone)
        fires = matching.runs_for_timer(workflows, timer, identity, max(at, timer.fire_at))
        timers.append(
            {
                "workflow": timer.key.workflow_id,
                "attribute": timer.key.attribute,
                "date": timer.key.date_value,
                "utc": f"{timer.fire_at:%Y-%m-%dT%H:%M:%SZ}",
                "local": f"{timer.fire_at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}",
                "state": "ahead" if timer.fire_at > at else "due or past",
                "in_scope": bool(fires.runs),
                "reason": fires.skipped[0].reason if fires.skipped else "",
            }
        )
    return {
        "identity": identity_id,
        "at": f"{at:%Y-%m-%dT%H:%M:%SZ}",
        "events": events,
        "timers": timers,
    }


def _run_data(run: matching.PlannedRun) -> dict[str, Any]:
    return {
        "workflow": run.workflow_id,
        "version": run.version,
        "trigger": run.trigger,
        "tasks": [
            {"id": t.task_id, "task": t.kind, "would_run": t.would_run, "reason": t.reason}
            for t in run.tasks
        ],
    }


def _plan(args: argparse.Namespace) -> int:
    workflows = load(workflows_dir(args.dir))
    if args.identity_file is not None:
        identity = _identity_from_file(args.identity_file)
    else:
        identity = _identity_from_registry(args.identity)
    at = args.at or datetime.now(UTC)
    plan = plan_identity(workflows, identity, at)
    if args.json:
        print(json.dumps(plan))
        return 0
    for line in plan_lines(plan):
        print(line)
    return 0


_MARK = {True: "run ", False: "skip", None: "later"}


def plan_lines(plan: Mapping[str, Any]) -> Sequence[str]:
    """The plan as the text `accord workflows plan` prints."""
    lines = [f"identity {plan['identity']} at {plan['at']}"]
    for event, found in plan["events"].items():
        lines.append(f"on {event}:")
        if not found["runs"] and not found["skipped"]:
            lines.append("  nothing starts")
        for run in found["runs"]:
            lines.append(f"  starts {run['workflow']} (version {run['version']})")
            for task in run["tasks"]:
                mark = _MARK[task["would_run"]]
                lines.append(f"    {mark:<5} {task['id']} ({task['task']}): {task['reason']}")
        for skipped in found["skipped"]:
            lines.append(f"  skips {skipped['workflow']}: {skipped['reason']}")
    lines.append("timers:")
    if not plan["timers"]:
        lines.append("  none")
    for timer in plan["timers"]:
        scope = "" if timer["in_scope"] else f"; would fire nothing: {timer['reason']}"
        lines.append(
            f"  {timer['workflow']}: {timer['attribute']} {timer['date']} -> {timer['utc']}"
            f" ({timer['local']}), {timer['state']}{scope}"
        )
    return lines
