"""`accord audit`: verify the hash chain, sign checkpoints, query and export the audit log.

Works on DATABASE_URL (the auditor's tables, schema ``auditor``).

``accord audit verify [--checkpoint FILE]... [--checkpoint-dir DIR] [--public-key PEM] [--json]``
    walks the whole chain, names the first record that does not match, and holds the
    database's checkpoints and the given checkpoint files against the log.
``accord audit checkpoint --key PEM [--out DIR]``
    signs the chain head now (the service also does it every ACCORD_AUDIT_CHECKPOINT_S).
``accord audit keygen --out PEM``
    a new Ed25519 signing key (mode 0600) and its public key next to it (PEM.pub).
``accord audit events [filters] [--format table|ndjson|csv] [--all]``
    records in log order, filtered like ``GET /v1/audit/events``.
``accord audit report NAME [--as-of TIME] [--since TIME] [--until TIME] [--json]``
    access, provisioning-latency, failures, drift, sod or sagas, from the log.

Exit codes: 0 clean / done; 1 the chain does not verify (or the database is unreachable);
2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.events.cli import EXIT_FAILURE, EXIT_USAGE, CliError
from accord.runtime.cli_scaffold import add_action, add_actions, add_json, add_limit

if TYPE_CHECKING:
    import asyncpg

    from accord.auditor.domain.checkpoints import Checkpoint
    from accord.auditor.verify import Report


SCHEMA = "auditor"
NO_TABLES = "no audit tables in this database: has the auditor run?"
PAGE = 1000


def register_audit(commands: Any) -> None:
    """Add `accord audit` to the accord command."""
    actions = add_actions(
        commands,
        "audit",
        help="verify the tamper-evident audit log, sign checkpoints, query and export it",
        description="Every event of every service is one record of the audit log, chained "
        "by SHA-256 to the record before it. The database is DATABASE_URL (schema auditor).",
    )

    verify = add_action(
        actions,
        "verify",
        _verify,
        help="check the whole hash chain and the signed checkpoints",
        description="Recompute every record's hash from its content and its predecessor's "
        "hash, check the chain ends at the recorded head, and hold every checkpoint (the "
        "database's, and the files given) against the log. Names the first record that "
        "does not match. Exit 0 clean, 1 broken.",
    )
    verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint file kept outside the database (repeatable)",
    )
    verify.add_argument(
        "--checkpoint-dir",
        type=Path,
        metavar="DIR",
        help="every checkpoint-*.json in DIR (none if DIR does not exist yet)",
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="PEM",
        help="the trusted signing key (else each checkpoint's own key is used)",
    )
    add_json(verify, "print the report as JSON")

    checkpoint = add_action(
        actions,
        "checkpoint",
        _checkpoint,
        help="sign the chain head now",
        description="Sign the current chain head with an Ed25519 key, keep the checkpoint in "
        "the database, and write it to DIR (keep that copy where the database's "
        "administrators cannot rewrite it).",
    )
    checkpoint.add_argument("--key", type=Path, required=True, metavar="PEM", help="signing key")
    checkpoint.add_argument("--out", type=Path, metavar="DIR", help="folder for the file")

    keygen = add_action(
        actions,
        "keygen",
        _keygen,
        help="make an Ed25519 signing key for checkpoints",
        description="Write a new private key to PEM (mode 0600, never overwritten) and its "
        "public key to PEM.pub (give that one to whoever verifies).",
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="PEM")

    events = add_action(
        actions,
        "events",
        _events,
        help="list or export records, filtered",
        description="Records in log order. Filters combine (AND). Times are RFC 3339.",
    )
    for name in ("correlation-id", "subject", "actor", "type", "outcome", "target"):
        events.add_argument(f"--{name}", metavar=name.upper().replace("-", "_"))
    events.add_argument("--since", type=_time, metavar="TIME", help="occurred at or after")
    events.add_argument("--until", type=_time, metavar="TIME", help="occurred before")
    events.add_argument("--after", type=int, default=0, metavar="RECORD_ID", help="cursor")
    add_limit(events, 50, help="records per page (50)")
    events.add_argument("--all", action="store_true", help="every matching record, all pages")
    events.add_argument("--format", choices=("table", "ndjson", "csv"), default="table")

    report = add_action(
        actions,
        "report",
        _report,
        help="access as of a time, provisioning latency, failures, drift, SoD, saga outcomes",
        description="Reports read the audit log only, so they hold for any past time. "
        "access: who held what at --as-of (default now). The others cover "
        "[--since, --until) (default: the last 24 hours).",
    )
    report.add_argument("name", choices=sorted(REPORTS), metavar="NAME", help=", ".join(REPORTS))
    report.add_argument("--as-of", type=_time, metavar="TIME", help="access: at this time")
    report.add_argument("--principal", metavar="USER_ID", help="access: one principal only")
    report.add_argument("--application", metavar="APP", help="access: one application only")
    report.add_argument("--since", type=_time, metavar="TIME")
    report.add_argument("--until", type=_time, metavar="TIME")
    add_json(report, "print JSON")


def _time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. Z")
    return parsed


def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    """Work on the auditor's tables in DATABASE_URL."""
    from accord.runtime.cli_support import run_on_database

    return run_on_database(work, schema=SCHEMA, no_tables=NO_TABLES)


# --- verify ----------------------------------------------------------------------------------


def _read_checkpoints(args: argparse.Namespace) -> list[tuple[str, Checkpoint]]:
    from accord.auditor.domain.checkpoints import Checkpoint

    files = list(args.checkpoint)
    folder: Path | None = args.checkpoint_dir
    # A folder not made yet holds no checkpoints yet: the first checkpoint written there
    # makes it (the auditor's comes ACCORD_AUDIT_CHECKPOINT_S after it starts).
    if folder is not None and folder.exists():
        if not folder.is_dir():
            raise CliError(f"{folder} is not a folder", EXIT_USAGE)
        files += sorted(folder.glob("checkpoint-*.json"))
    found = []
    for path in files:
        try:
            found.append((str(path), Checkpoint.from_json(path.read_text())))
        except OSError as error:
            raise CliError(f"cannot read {path}: {error.strerror}", EXIT_USAGE) from None
        except ValueError as error:
            raise CliError(f"{path}: {error}", EXIT_USAGE) from None
    return found


def _verify(args: argparse.Namespace) -> int:
    from accord.auditor.domain.checkpoints import load_public_key
    from accord.auditor.verify import verify_log

    checkpoints = _read_checkpoints(args)
    trusted = None
    if args.public_key is not None:
        try:
            trusted = load_public_key(args.public_key.read_bytes())
        except (OSError, ValueError) as error:
            raise CliError(f"{args.public_key}: {error}", EXIT_USAGE) from None
    show_progress = sys.stderr.isatty() and not args.json

    def progress(done: int, total: int) -> None:
        line = f"\raccord audit: verified up to record {done:,} of {total:,}"
        print(line, end="", file=sys.stderr)

    async def work(pool: asyncpg.Pool) -> int:
        report = await verify_log(
            pool,
            checkpoints=checkpoints,
            trusted_key=trusted,
            progress=progress if show_progress else None,
        )
        if show_progress:
            print(file=sys.stderr)
        print(json.dumps(_report_json(report), indent=2) if args.json else _report_text(report))
        return 0 if report.ok else EXIT_FAILURE

    return _with_pool(work)


def _report_json(report: Report) -> dict[str, Any]:
    broken = report.first_break
    return {
        "ok": report.ok,
        "records_checked": report.checked,
        "chained_from": report.chained_from,
        "head": report.head_id,
        "seconds": round(report.seconds, 3),
        "first_break": {"record_id": broken.record_id, "reason": broken.reason} if broken else None,
        "checkpoints": [
            {"source": c.source, "record_id": c.record_id, "ok": c.ok, "problem": c.problem}
            for c in report.checkpoints
        ],
    }


def _report_text(report: Report) -> str:
    lines = []
    if report.first_break is None:
        lines.append(
            f"chain OK: {report.checked:,} records ({report.chained_from}..{report.head_id}) "
            f"verified in {report.seconds:.2f} s"
        )
    else:
        lines.append(
            f"chain BROKEN at record {report.first_break.record_id}: "
            f"{report.first_break.reason} ({report.checked:,} records before it verified)"
        )
    for c in report.checkpoints:
        state = "OK" if c.ok else f"FAILED: {c.problem}"
        lines.append(f"checkpoint at record {c.record_id} ({c.source}): {state}")
    if not report.checkpoints:
        lines.append("no checkpoints to check (see accord audit checkpoint)")
    return "\n".join(lines)


# --- checkpoint and keygen -------------------------------------------------------------------


def _checkpoint(args: argparse.Namespace) -> int:
    from accord.auditor.checkpointing import take_checkpoint
    from accord.auditor.domain.checkpoints import load_private_key

    try:
        load_private_key(args.key.read_bytes())
    except (OSError, ValueError) as error:
        raise CliError(f"{args.key}: {error}", EXIT_USAGE) from None

    async def work(pool: asyncpg.Pool) -> int:
        made = await take_checkpoint(pool, args.key, args.out, as_writer=False)
        if made is None:
            print("accord audit: the head is already checkpointed (or the log is empty)")
            return 0
        where = f", written to {args.out}" if args.out else ""
        print(f"checkpoint at record {made.record_id}: {made.hash} (key {made.key_id}){where}")
        return 0

    return _with_pool(work)


def _keygen(args: argparse.Namespace) -> int:
    from accord.auditor.domain.checkpoints import load_private_key, new_private_key_pem, public_pem

    out: Path = args.out
    pem = new_private_key_pem()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{out} exists: not overwritten", EXIT_USAGE) from None
    except OSError as error:
        raise CliError(f"cannot write {out}: {error.strerror}", EXIT_USAGE) from None
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    public = Path(f"{out}.pub")
    public.write_text(public_pem(load_private_key(pem).public_key()))
    print(f"signing key: {out} (keep it secret); public key: {public}")
    return 0


# --- reports --------------------------------------------------------------------------------

#: `access` and report_queries.SPAN_REPORTS, named here so that registering the command
#: imports no database client (a test keeps the two equal).
REPORTS = ("access", "provisioning-latency", "failures", "drift", "sod", "sagas")


def _report(args: argparse.Namespace) -> int:
    from accord.auditor.adapters import report_queries

    until = args.until or datetime.now(UTC)
    since = args.since or until - report_queries.DEFAULT_SPAN
    if since >= until:
        raise CliError("--since must be before --until", EXIT_USAGE)

    async def work(pool: asyncpg.Pool) -> int:
        found: Any
        if args.name == "access":
            found = await report_queries.access_as_of(
                pool,
                args.as_of or datetime.now(UTC),
                principal_id=args.principal,
                application=args.application,
            )
        else:
            found = await report_queries.SPAN_REPORTS[args.name](pool, since, until)
        if args.json:
            print(json.dumps(found, indent=2, default=str))
        else:
            _print_report(found)
        return 0

    return _with_pool(work)


def _print_report(found: Any, title: str | None = None) -> None:
    if isinstance(found, dict) and not all(isinstance(v, list | dict) for v in found.values()):
        found = [found]
    if isinstance(found, dict):
        for name, part in found.items():
            _print_report(part, name)
        return
    if title:
        print(f"== {title} ({len(found)})")
    if not found:
        print("(none)")
        return
    columns = [k for k in found[0] if not k.endswith("payload")]
    cells = [[_text(row.get(c)) for c in columns] for row in found]
    widths = [min(max(len(c), *(len(r[i]) for r in cells)), 40) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v[:40].ljust(w) for v, w in zip(row, widths, strict=True)))


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.0f}"
    return str(value)


# --- events ----------------------------------------------------------------------------------


def _events(args: argparse.Namespace) -> int:
    from accord.auditor.adapters import log_store
    from accord.auditor.adapters.log_store import Filters
    from accord.auditor.domain.export import CSV_HEADER

    if not 1 <= args.limit <= 1000:
        raise CliError("--limit must be between 1 and 1000", EXIT_USAGE)
    filters = Filters(
        correlation_id=args.correlation_id,
        subject=args.subject,
        actor=args.actor,
        event_type=args.type,
        outcome=args.outcome,
        target=args.target,
        since=args.since,
        until=args.until,
    )

    async def work(pool: asyncpg.Pool) -> int:
        shown, page = 0, []
        if args.format == "csv":
            sys.stdout.write(CSV_HEADER)
        async for page in log_store.pages(pool, filters, after=args.after, size=args.limit):
            _print_page(page, args.format, header=shown == 0)
            shown += len(page)
            if not args.all:
                break
        if args.format == "table":
            more = "" if args.all or shown < args.limit else f" (next: --after {after_of(page)})"
            print(f"{shown} record(s){more}", file=sys.stderr)
        return 0

    return _with_pool(work)


def after_of(page: Sequence[dict[str, Any]]) -> int:
    """The cursor after a page."""
    return int(page[-1]["record_id"]) if page else 0


def _print_page(page: Sequence[dict[str, Any]], form: str, *, header: bool) -> None:
    from accord.auditor.domain.export import csv_line, ndjson_line

    for item in page:
        if form == "ndjson":
            sys.stdout.write(ndjson_line(item))
        elif form == "csv":
            sys.stdout.write(csv_line(item))
    if form != "table":
        return
    if header and page:
        print(f"{'RECORD':>8}  {'OCCURRED AT':<26} {'TYPE':<28} {'OUTCOME':<8} SUBJECT")
    for item in page:
        print(
            f"{item['record_id']:>8}  {item['occurred_at'].isoformat():<26.26} "
            f"{item['event_type']:<28.28} {item['outcome']:<8} {item['subject']}"
        )
