"""`accord workflows simulate`: a draft workflow set on recorded history, beside the active set.

``accord workflows simulate --since 30d --dir DRAFT [--active-dir DIR] [--until TIME]
[--warm-up 90d] [--events FILE] [--json]``

The history is the audit log's identity events: from a JSON lines export (``--events
FILE``, what ``accord audit events --format ndjson --all`` or ``GET /v1/audit/export``
write), else through the auditor's query API at ``ACCORD_AUDITOR_URL`` with the API token
of ``ACCORD_API_TOKEN`` or ``--token-file`` (the ``audit:read`` permission). The
orchestrator never reads the auditor's tables: the auditor owns its schema.

Nothing is sent to any target: the replay only asks each set's matcher what would run
(:mod:`accord.orchestrator.workflows.simulate`). Account tasks on ``all`` targets use the
birthright rules as the orchestrator loads them (ACCORD_BIRTHRIGHT_FILE, else
ACCORD_BIRTHRIGHT_TARGETS).

Exit codes: 0 the report was printed (whatever the difference), 1 the history could not
be read, 2 a usage error (a bad folder, time or file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.events.cli import EXIT_FAILURE, EXIT_USAGE, CliError

if TYPE_CHECKING:
    import httpx

    from accord.orchestrator.workflows.loader import WorkflowSet
    from accord.orchestrator.workflows.simulate import Diff, Fetch, HistoryEvent, Planner, Replay

    #: Binds a loaded workflow set to the matcher (matching.py's functions).
    PlannerFactory = Callable[[WorkflowSet], Planner]

PROGRESS_EVERY = 10_000
_RELATIVE = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def add_simulate(
    actions: Any, planner_for: PlannerFactory | None = None
) -> argparse.ArgumentParser:
    """Add ``simulate`` to ``accord workflows``; ``planner_for`` binds a set to the matcher
    (simulate_planner.matching_planner, imported when the command runs; a test may bind
    another planner)."""
    parser: argparse.ArgumentParser = actions.add_parser(
        "simulate",
        help="replay recorded identity history through a draft set and the active set",
        description="Replays the identity events of the audit log (user.created, updated, "
        "deactivated, reactivated, deleted) through the draft folder and the active one, "
        "touching no target, and reports the difference: runs and tasks per workflow, "
        "accounts created, enabled, disabled or deleted per target, approvals asked.",
        epilog="History: --events FILE (the auditor's JSON lines export), else the auditor's "
        "API at $ACCORD_AUDITOR_URL with $ACCORD_API_TOKEN or --token-file (audit:read).",
    )
    parser.add_argument(
        "--since", required=True, type=_moment, metavar="30d|TIME", help="window start"
    )
    parser.add_argument("--until", type=_moment, metavar="TIME", help="window end (now)")
    parser.add_argument("--dir", type=Path, required=True, metavar="DRAFT", help="draft folder")
    parser.add_argument(
        "--active-dir",
        type=Path,
        metavar="DIR",
        help="active folder (default: $ACCORD_WORKFLOWS_DIR)",
    )
    parser.add_argument(
        "--warm-up",
        type=_span,
        default=timedelta(0),
        metavar="90d",
        help="also read this much history before --since, to build identities' state only",
    )
    parser.add_argument("--events", type=Path, metavar="FILE", help="JSON lines export")
    parser.add_argument("--token-file", type=Path, metavar="FILE", help="API token file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=lambda args: run(args, planner_for or _matching_planner()))
    return parser


def _matching_planner() -> PlannerFactory:
    from accord.orchestrator.workflows.simulate_planner import matching_planner

    return matching_planner


def _span(text: str) -> timedelta:
    found = _RELATIVE.match(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span such as 30d, 12h or 90m")
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


def _moment(text: str) -> datetime:
    """``30d`` (that long before now) or an RFC 3339 time with an offset."""
    if _RELATIVE.match(text.strip()):
        return datetime.now(UTC) - _span(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 30d nor an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. Z")
    return parsed


def _check_expression(text: str) -> str | None:
    from accord.orchestrator.workflows.expressions import ExpressionError, compile_condition

    try:
        compile_condition(text)
    except ExpressionError as error:
        return str(error)
    return None


def load_set(folder: Path) -> WorkflowSet:
    """A folder's workflows, expressions checked (targets are not: no platform needed)."""
    from accord.orchestrator.workflows.loader import Checks, WorkflowErrors, load_folder
    from accord.orchestrator.workflows.shipped import with_shipped

    try:
        return with_shipped(load_folder(folder, Checks(expression=_check_expression)))
    except WorkflowErrors as errors:
        raise CliError(f"{folder}: cannot be loaded:\n{errors}", EXIT_USAGE) from None


def http_fetch(base_url: str, token: str, client: httpx.Client | None = None) -> Fetch:
    """GET JSON from the auditor's API with a bearer token; a failure is a CliError."""
    import httpx

    http = client or httpx.Client(timeout=30.0)
    base = base_url.rstrip("/")

    def fetch(path: str, params: Mapping[str, str | int]) -> Mapping[str, Any]:
        try:
            response = http.get(
                base + path, params=dict(params), headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as error:
            raise CliError(f"auditor at {base}: {error}", EXIT_FAILURE) from None
        if response.status_code != 200:
            raise CliError(
                f"auditor at {base}: {path} answered {response.status_code}: {response.text[:200]}",
                EXIT_FAILURE,
            )
        found: Mapping[str, Any] = response.json()
        return found

    return fetch


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text().strip())
        except OSError as error:
            raise CliError(f"cannot read {args.token_file}: {error.strerror}", EXIT_USAGE) from None
    token = os.environ.get("ACCORD_API_TOKEN", "").strip()
    if not token:
        raise CliError("no API token: set ACCORD_API_TOKEN or pass --token-file", EXIT_USAGE)
    return token


def read_history(args: argparse.Namespace, since: datetime, until: datetime) -> list[HistoryEvent]:
    """The identity events of ``[since, until)``, from the file or the auditor's API."""
    from accord.orchestrator.workflows.simulate import read_api, read_export

    if args.events is not None:
        try:
            with args.events.open(encoding="utf-8") as lines:
                return [e for e in read_export(lines) if since <= e.occurred_at < until]
        except OSError as error:
            raise CliError(f"cannot read {args.events}: {error.strerror}", EXIT_USAGE) from None
        except ValueError as error:
            raise CliError(f"{args.events}: {error}", EXIT_USAGE) from None
    base = os.environ.get("ACCORD_AUDITOR_URL", "").strip()
    if not base:
        raise CliError("no history: pass --events FILE or set ACCORD_AUDITOR_URL", EXIT_USAGE)
    return read_api(http_fetch(base, _token(args)), since=since, until=until)


def run(args: argparse.Namespace, planner_for: PlannerFactory) -> int:
    """The action: load both sets, read the history, replay, print the report."""
    from accord.orchestrator.bootstrap import load_birthright  # the service's own loading
    from accord.orchestrator.settings import OrchestratorSettings
    from accord.orchestrator.workflows.simulate import diff, replay

    until = args.until or datetime.now(UTC)
    if args.since >= until:
        raise CliError("--since must be before --until", EXIT_USAGE)
    active_dir = args.active_dir or _env_dir()
    draft, active = load_set(args.dir), load_set(active_dir)
    birthright = load_birthright(OrchestratorSettings())
    history = read_history(args, args.since - args.warm_up, until)

    def progress(done: int, total: int) -> None:
        print(f"accord workflows simulate: {done:,} of {total:,} events", file=sys.stderr)

    started = time.perf_counter()
    outcome = replay(
        history,
        active=planner_for(active),
        draft=planner_for(draft),
        birthright_targets=birthright.targets_for,
        since=args.since,
        until=until,
        progress=progress,
        progress_every=PROGRESS_EVERY,
    )
    seconds = time.perf_counter() - started
    difference = diff(outcome.active, outcome.draft)
    replayed = outcome.events + outcome.warm_up
    rate = replayed / seconds if seconds > 0 else 0.0
    window = {"since": args.since.isoformat(), "until": until.isoformat()}
    if args.json:
        print(json.dumps(report_json(outcome, difference, window, seconds), indent=2))
    else:
        print(report_text(outcome, difference, window))
    print(
        f"accord workflows simulate: {replayed:,} events in {seconds:.2f} s ({rate:,.0f} events/s)",
        file=sys.stderr,
    )
    return 0


def _env_dir() -> Path:
    folder = os.environ.get("ACCORD_WORKFLOWS_DIR", "").strip()
    if not folder:
        raise CliError("no active set: pass --active-dir or set ACCORD_WORKFLOWS_DIR", EXIT_USAGE)
    return Path(folder)


def report_json(
    outcome: Replay, difference: Diff, window: Mapping[str, str], seconds: float
) -> dict[str, Any]:
    """The report as JSON: the window, what was read, the difference, the caveats."""
    replayed = outcome.events + outcome.warm_up
    return {
        "window": dict(window),
        "events": outcome.events,
        "warm_up_events": outcome.warm_up,
        "identities": outcome.identities,
        "runs": {
            "active": dict(sorted(outcome.active.runs_per_workflow().items())),
            "draft": dict(sorted(outcome.draft.runs_per_workflow().items())),
        },
        "diff": difference.to_json(),
        "no_baseline": outcome.no_baseline,
        "invalid": outcome.invalid,
        "redacted_fields": dict(sorted(outcome.redacted.items())),
        "seconds": round(seconds, 3),
        "events_per_second": round(replayed / seconds) if seconds > 0 else None,
    }


def report_text(outcome: Replay, difference: Diff, window: Mapping[str, str]) -> str:
    """The report for people: the difference first, then what the history could not tell."""
    lines = [
        f"window {window['since']} .. {window['until']}: {outcome.events:,} identity events "
        f"({outcome.warm_up:,} before it for state), {outcome.identities:,} identities",
    ]
    if difference.empty:
        lines.append("no difference: the draft does what the active set does on this history")
    lines += _runs_lines(outcome, difference)
    lines += _effects_lines(difference)
    lines += _caveat_lines(outcome)
    return "\n".join(lines)


def _runs_lines(outcome: Replay, difference: Diff) -> list[str]:
    active, draft = outcome.active.runs_per_workflow(), outcome.draft.runs_per_workflow()
    lines = ["runs per workflow (active -> draft; * differs):"]
    for workflow in sorted(active.keys() | draft.keys()):
        mark = "  " if active[workflow] == draft[workflow] else "* "
        lines.append(f"  {mark}{workflow}: {active[workflow]} -> {draft[workflow]}")
        runs = difference.runs.get(workflow)
        if runs is None:
            continue
        for sign, keys in (("+", runs.added), ("-", runs.removed)):
            lines += [f"      {sign} {k.identity_id} ({k.cause}, {k.at})" for k in keys]
    return lines


def _effects_lines(difference: Diff) -> list[str]:
    lines: list[str] = []
    if difference.tasks:
        lines.append("tasks that differ (active -> draft):")
        for workflow, kinds in difference.tasks.items():
            lines += [f"  {workflow} {kind}: {a} -> {d}" for kind, (a, d) in kinds.items()]
    if difference.accounts:
        lines.append("accounts per target (+ only the draft, - only the active set):")
        for target, ops in difference.accounts.items():
            for op, sides in ops.items():
                for sign, side in (("+", "added"), ("-", "removed")):
                    if sides[side]:
                        lines.append(f"  {sign} {target} {op}: {', '.join(sides[side])}")
    asked = [("+", a) for a in difference.approvals_added]
    asked += [("-", a) for a in difference.approvals_removed]
    if asked:
        lines.append("approvals asked (+ only the draft, - only the active set):")
    lines += [
        f"  {sign} {a.workflow_id}.{a.task_id} for {a.identity_id} ({a.approvers})"
        for sign, a in asked
    ]
    return lines


def _caveat_lines(outcome: Replay) -> list[str]:
    lines: list[str] = []
    if outcome.redacted:
        fields = ", ".join(f"{k} ({v} events)" for k, v in sorted(outcome.redacted.items()))
        lines.append(
            f"cannot simulate redacted fields (ACCORD_AUDIT_REDACT_FIELDS): {fields}; "
            "scopes and conditions reading them saw them absent"
        )
    if outcome.no_baseline:
        lines.append(
            f"{len(outcome.no_baseline)} event(s) about identities with no earlier state read: "
            "applied without planning (widen --warm-up)"
        )
    if outcome.invalid:
        lines.append(f"{len(outcome.invalid)} event(s) with an unreadable profile, skipped:")
        lines.extend(f"  {reason}" for reason in outcome.invalid[:20])
    return lines
