"""`accord approvals`: list, show, approve and deny access-request approval stages.

Needs DATABASE_URL (authz's tables, schema ``authz``). ``approve`` and ``deny`` also read
the policy folder ($ACCORD_POLICY_DIR, else the policies shipped with authz) for the
catalogue (where a granted entitlement is provisioned) and the approval settings
(ACCORD_APPROVAL_TIMEOUT_S: the next stage's deadline) as the service does.

``accord approvals list [--approver USER] [--json] [--limit N]``
    the stages waiting for a decision: request, principal, entitlement, stage n/N, approvers
    and deadline; then the approvals lifecycle workflows wait for: approval, identity,
    workflow and task, approvers, reason and deadline (``--json``: one object per line,
    ``kind`` access or workflow).
``accord approvals show ID [--json]``
    a request and its whole approval chain, or a workflow's approval.
``accord approvals approve|deny ID --as USER [--comment TEXT]``
    decide the request's current stage as USER, exactly as ``POST
    /v1/access-requests/{id}/approve|deny`` does: same checks (nobody approves their own
    request; only the stage's approvers decide it), same state change and same events. The
    events go to authz's outbox in the same transaction; the running authz's relay
    publishes them. Prints the chain's new state. An ID that names a workflow's approval
    decides it as ``POST /v1/workflow-approvals/{id}/approve|reject`` does for an approver
    (never the identity it is about; refused once it expired) and queues approval.decided.

Exit codes: 0 done, 1 the request is unknown, not waiting for approval, or USER may not
decide it (or the database is unreachable), 2 a usage error (DATABASE_URL unset).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from accord.events.cli import EXIT_USAGE, CliError
from accord.runtime.cli_scaffold import add_action, add_actions, add_json, add_limit, int_between

if TYPE_CHECKING:
    import asyncpg

    from accord.authz import access
    from accord.authz.catalogue import Catalogue
    from accord.events import Envelope


SCHEMA = "authz"
NO_TABLES = "no authz tables in this database: has authz run?"
SOURCE = "accord/authz/cli"
MAX_COMMENT = 2048
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")


# --- the command ----------------------------------------------------------------------------


def register_approvals(commands: Any) -> None:
    """Add `accord approvals` to the accord command."""
    actions = add_actions(
        commands,
        "approvals",
        help="list, show, approve and deny access requests' approval stages",
        description="High-risk access requests wait for an approval chain (e.g. the "
        "principal's manager, then the application's owner), decided one stage at a time. "
        "The database is DATABASE_URL (schema authz).",
        epilog="approve and deny read the catalogue from $ACCORD_POLICY_DIR (default: the "
        "policies shipped with authz); their events go to authz's outbox and the running "
        "authz publishes them.",
    )

    listing = add_action(
        actions,
        "list",
        _list,
        help="stages waiting for a decision, by request id",
        description="Every pending stage: request id, principal, application/entitlement, "
        "stage n/N and its name, who may decide it, and its deadline.",
    )
    listing.add_argument(
        "--approver", type=_identifier, metavar="USER", help="only the stages USER may decide"
    )
    add_limit(listing, 50, type=int_between(1, 10_000, "_limit", not_a_number=True))
    add_json(listing)

    show = add_action(
        actions,
        "show",
        _show,
        help="one request and its approval chain",
        description="The request (who asked, for whom, what, its status and reasons) and "
        "every stage of its chain: who decides it, who decided it, when, and the comment.",
    )
    show.add_argument("request_id", metavar="REQUEST_ID", help="the access request's id")
    add_json(show, "print one JSON object")

    for name, approve, verb in (("approve", True, "Approve"), ("deny", False, "Deny")):
        decide = add_action(
            actions,
            name,
            _decide,
            help=f"{verb.lower()} a request's current stage as an approver",
            description=f"{verb} the current stage of REQUEST_ID as USER, as the API does: "
            "USER must be one of the stage's approvers, and nobody approves their own "
            "request. "
            + (
                "The next stage then opens; after the last one the request is approved "
                "and the access granted."
                if approve
                else "The request is then denied; later stages never open."
            ),
        )
        decide.add_argument("request_id", metavar="REQUEST_ID", help="the access request's id")
        decide.add_argument(
            "--as",
            dest="approver",
            required=True,
            type=_identifier,
            metavar="USER",
            help="the approver's user_id (recorded as the decider)",
        )
        decide.add_argument(
            "--comment",
            type=_comment,
            metavar="TEXT",
            help=f"why, for the audit log (≤ {MAX_COMMENT} chars)",
        )
        decide.set_defaults(approve=approve)


def _identifier(text: str) -> str:
    if not _IDENTIFIER.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a user id (letters, digits and ._:@+-, at most 128)"
        )
    return text


def _comment(text: str) -> str:
    if len(text) > MAX_COMMENT or "\x00" in text:
        raise argparse.ArgumentTypeError(f"at most {MAX_COMMENT} characters, no NUL")
    return text


def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    """Work on authz's tables in DATABASE_URL."""
    from accord.runtime.cli_support import run_on_database

    return run_on_database(work, schema=SCHEMA, no_tables=NO_TABLES)


# --- list and show --------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from accord.authz.adapters import approvals, workflow_approvals

    async def work(pool: asyncpg.Pool) -> int:
        items = await approvals.pending(pool, approver=args.approver, after=None, limit=args.limit)
        workflows = await workflow_approvals.pending(
            pool, approver=args.approver, after=None, limit=args.limit
        )
        stages = {
            item["request_id"]: len(await approvals.chain(pool, item["request_id"]))
            for item in items
        }
        if args.json:
            for item in items:
                line = {"kind": "access", **item, "stages": stages[item["request_id"]]}
                print(json.dumps(line, default=_plain))
            for item in workflows:
                line = {"kind": "workflow", **_public(item)}
                print(json.dumps(line, default=_plain))
            return 0
        if not items and not workflows:
            whose = f" for {args.approver}" if args.approver else ""
            print(f"no approvals waiting{whose}")
            return 0
        if items:
            _print_stages(items, stages)
        if workflows:
            if items:
                print()
            for text in _workflow_table(workflows):
                print(text)
        return 0

    return _with_pool(work)


def _print_stages(items: Sequence[dict[str, Any]], stages: dict[str, int]) -> None:
    """The access requests' stages waiting, one row each."""
    rows = [
        [
            item["request_id"],
            item["principal_id"],
            f"{item['application']}/{item['entitlement']}",
            f"{item['stage']}/{stages[item['request_id']]} {item['name']}",
            ",".join(item["approvers"]) + (" (escalated)" if item["escalated"] else ""),
            _time(item["due_at"], never="no deadline"),
        ]
        for item in items
    ]
    header = ["REQUEST", "PRINCIPAL", "ENTITLEMENT", "STAGE", "APPROVERS", "DUE"]
    for line in _table([header, *rows]):
        print(line)


def _workflow_table(items: Sequence[dict[str, Any]]) -> list[str]:
    """The approvals workflows wait for, one row each, with what they ask."""
    rows = [
        [
            item["approval_id"],
            item["user_id"],
            f"{item['workflow_id']}/{item['task_id']}",
            ",".join(item["approvers"]) + (" (escalation)" if item["escalation"] else ""),
            item["reason"] or "-",
            _time(item["expires_at"]),
        ]
        for item in items
    ]
    header = ["WORKFLOW APPROVAL", "IDENTITY", "WORKFLOW/TASK", "APPROVERS", "REASON", "EXPIRES"]
    return _table([header, *rows])


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A workflow approval as the API shows it (its correlation id is plumbing)."""
    return {k: v for k, v in row.items() if k != "correlation_id"}


def _show(args: argparse.Namespace) -> int:
    from accord.authz.adapters import approvals, requests, workflow_approvals

    async def work(pool: asyncpg.Pool) -> int:
        request = await requests.get(pool, args.request_id)
        if request is None:
            workflow = await workflow_approvals.get(pool, args.request_id)
            if workflow is None:
                raise CliError(f"access request {args.request_id} not found")
            if args.json:
                print(json.dumps(_public(workflow), default=_plain, indent=2))
                return 0
            for line in _describe_workflow(workflow):
                print(line)
            return 0
        chain = await approvals.chain(pool, args.request_id)
        if args.json:
            print(json.dumps({"request": request, "approvals": chain}, default=_plain, indent=2))
            return 0
        for line in _describe(request):
            print(line)
        for line in _chain_lines(chain):
            print(line)
        return 0

    return _with_pool(work)


# --- approve and deny -----------------------------------------------------------------------


def _decide(args: argparse.Namespace) -> int:
    # The settings and policies first, whatever ID names: a broken setting is a usage error
    # before any database work, as for every command.
    from accord.authz import access
    from accord.authz.adapters import approvals, requests, workflow_approvals
    from accord.authz.domain.approvals import NotAnApprover
    from accord.runtime.outbox import enqueue

    catalogue, settings = _rules()

    async def is_workflow(pool: asyncpg.Pool) -> bool:
        return await workflow_approvals.get(pool, args.request_id) is not None

    if _with_pool(is_workflow):
        return _decide_workflow(args)
    verb = "approve" if args.approve else "deny"

    async def work(pool: asyncpg.Pool) -> int:
        try:
            async with pool.acquire() as conn, conn.transaction():
                events = await access.decide_stage(
                    conn,
                    args.request_id,
                    approver_id=args.approver,
                    approve=args.approve,
                    comment=args.comment,
                    catalogue=catalogue,
                    settings=settings,
                    source=SOURCE,
                )
                await enqueue(conn, SCHEMA, events)
        except access.NotInvolved:
            raise CliError(
                f"{args.approver} cannot {verb} {args.request_id}: not an approver of it"
            ) from None
        except access.RequestNotFound:
            raise CliError(f"access request {args.request_id} not found") from None
        except access.NotWaiting as error:
            raise CliError(
                f"access request {args.request_id} is {error.status}, not waiting for approval"
            ) from None
        except NotAnApprover as error:
            raise CliError(f"{args.approver} cannot {verb} {args.request_id}: {error}") from None
        request = await requests.get(pool, args.request_id)
        chain = await approvals.chain(pool, args.request_id)
        assert request is not None
        for line in _outcome(request, chain, events, args.approver, args.approve):
            print(line)
        return 0

    return _with_pool(work)


def _decide_workflow(args: argparse.Namespace) -> int:
    """Decide a workflow's approval as USER (an approver of it: the CLI is no admin)."""
    from accord.authz import access
    from accord.authz.adapters import workflow_approvals
    from accord.authz.domain import workflow_approvals as workflow_rules
    from accord.authz.domain.approvals import NotAnApprover
    from accord.runtime.outbox import enqueue

    verb = "approve" if args.approve else "reject"

    async def work(pool: asyncpg.Pool) -> int:
        try:
            async with pool.acquire() as conn, conn.transaction():
                events = await access.decide_workflow_approval(
                    conn,
                    args.request_id,
                    approver_id=args.approver,
                    approve=args.approve,
                    comment=args.comment,
                    admin=False,
                    source=SOURCE,
                )
                await enqueue(conn, SCHEMA, events)
        except workflow_rules.ApprovalNotFound:
            raise CliError(
                f"{args.approver} cannot {verb} {args.request_id}: not an approver of it"
            ) from None
        except (workflow_rules.NotPending, workflow_rules.TooLate) as error:
            raise CliError(f"workflow approval {args.request_id}: {error}") from None
        except NotAnApprover as error:
            raise CliError(f"{args.approver} cannot {verb} {args.request_id}: {error}") from None
        row = await workflow_approvals.get(pool, args.request_id)
        assert row is not None
        print(f"{row['status']} workflow approval {args.request_id} as {args.approver}")
        for line in _describe_workflow(row):
            print(line)
        print(f"approval.decided queued in authz's outbox for run {row['run_id']}")
        return 0

    return _with_pool(work)


def _rules() -> tuple[Catalogue, access.ApprovalSettings]:
    """The catalogue and approval settings authz would use now."""
    from pydantic import ValidationError

    from accord.authz.bootstrap import approval_settings
    from accord.authz.policy_holder import LoadError, PolicyHolder
    from accord.authz.settings import AuthzSettings

    try:
        settings = AuthzSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors()
        )
        raise CliError(f"invalid authz settings: {problems}", EXIT_USAGE) from None
    try:
        catalogue = PolicyHolder(settings.policy_dir).current.catalogue
    except LoadError as error:
        raise CliError(f"cannot load the policy folder: {error}") from None
    return catalogue, approval_settings(settings)


def _outcome(
    request: dict[str, Any],
    chain: Sequence[dict[str, Any]],
    events: Sequence[Envelope],
    approver: str,
    approved: bool,
) -> list[str]:
    """What happened, the chain now, and where the request stands."""
    from accord.events import AccessApprovalDecided, AccessGranted

    numbers = [e.data.stage for e in events if isinstance(e.data, AccessApprovalDecided)]
    decided = next((s for s in chain if numbers and s["stage"] == numbers[0]), None)
    stage = f" stage {decided['stage']}/{len(chain)} ({decided['name']})" if decided else ""
    lines = [
        f"{'approved' if approved else 'denied'}{stage} of {request['request_id']} as {approver}"
    ]
    lines += _chain_lines(chain)
    status = request["status"]
    pending = next((s for s in chain if s["status"] == "pending"), None)
    granted = [e.data for e in events if isinstance(e.data, AccessGranted)]
    if status == "approval_required" and pending is not None:
        lines.append(
            f"request {request['request_id']} now waits for stage {pending['stage']}/"
            f"{len(chain)} ({pending['name']}): {', '.join(pending['approvers'])}"
        )
    elif status == "approved" and granted and granted[0].reaffirmed:
        lines.append(
            f"request {request['request_id']} is approved (the entitlement is already held: "
            f"no second grant; answered with grant {granted[0].grant_id})"
        )
    elif status == "approved" and granted:
        lines.append(
            f"request {request['request_id']} is approved: access granted "
            f"(grant {granted[0].grant_id}; access.granted queued in authz's outbox)"
        )
    elif status == "approved":
        lines.append(
            f"request {request['request_id']} is approved (the entitlement is already held: "
            "no second grant)"
        )
    else:
        lines.append(f"request {request['request_id']} is {status}")
    return lines


# --- rendering ------------------------------------------------------------------------------


def _describe(request: dict[str, Any]) -> list[str]:
    duration = request["duration_seconds"]
    fields = [
        ("request", request["request_id"]),
        ("status", request["status"]),
        ("principal", request["principal_id"]),
        ("requested by", request["requester_id"]),
        ("entitlement", f"{request['application']}/{request['entitlement']}"),
        ("justification", request["justification"] or "-"),
        ("duration", f"{duration} s" if duration else "until revoked"),
        ("created", _time(request["created_at"])),
        ("decided", _time(request["decided_at"], never="-")),
        ("reasons", ", ".join(request["reasons"]) or "-"),
    ]
    return [f"{name + ':':<15}{value}" for name, value in fields]


def _describe_workflow(row: dict[str, Any]) -> list[str]:
    decided = "-"
    if row["decided_by"]:
        decided = f"by {row['decided_by']} at {_time(row['decided_at'])}"
        if row["comment"]:
            decided += f": {json.dumps(row['comment'], ensure_ascii=False)}"
    fields = [
        ("approval", row["approval_id"]),
        ("status", row["status"]),
        ("identity", row["user_id"]),
        ("workflow", f"{row['workflow_id']} (run {row['run_id']}, task {row['task_id']})"),
        ("reason", row["reason"] or "-"),
        ("asked", ", ".join(row["asked"])),
        ("approvers", ", ".join(row["approvers"]) or "nobody"),
        ("escalation", "yes" if row["escalation"] else "no"),
        ("expires", _time(row["expires_at"])),
        ("decided", decided),
    ]
    return [f"{name + ':':<15}{value}" for name, value in fields]


def _chain_lines(chain: Sequence[dict[str, Any]]) -> list[str]:
    if not chain:
        return ["approvals:     none (no approval chain)"]
    rows = []
    for stage in chain:
        status = stage["status"] + (" (escalated)" if stage["escalated"] else "")
        if stage["decided_by"]:
            detail = f"by {stage['decided_by']} at {_time(stage['decided_at'])}"
            if stage["comment"]:
                detail += f": {json.dumps(stage['comment'], ensure_ascii=False)}"
        elif stage["status"] == "pending":
            detail = f"due {_time(stage['due_at'], never='never')}"
        elif stage["status"] == "expired":
            detail = f"at {_time(stage['decided_at'], never='-')}"
        else:
            detail = ""
        rows.append(
            [
                f"{stage['stage']}/{len(chain)}",
                stage["name"],
                status,
                ",".join(stage["approvers"]) or "-",
                detail,
            ]
        )
    return ["approvals:", *(f"  {line}" for line in _table(rows))]


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _plain(value: object) -> str:
    """JSON for what asyncpg returns and JSON has no form for (times as RFC 3339)."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _time(value: datetime | None, *, never: str = "-") -> str:
    if value is None:
        return never
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}Z"
