"""`accord sources`: run a source now, see the sources and their runs, decide held runs.

``accord sources run NAME [--dry-run] [--json]``
    read the source, compare it with the last state and publish what changed (through the
    sources service's outbox: the running service's relay sends it). ``--dry-run`` prints
    what would be published and writes nothing. A progress line on stderr counts the rows.
``accord sources status``
    every configured source: kind, schedule or watch, identities it holds, its last run.
``accord sources runs [--source NAME] [--limit N] [--json]`` and ``show RUN``
    the runs, newest first; one run with its problems (line, key, reason).
``accord sources approve RUN --as USER`` / ``reject RUN --as USER --reason TEXT``
    publish a run held at the safety limit as it was planned, or drop it.

The sources come from ``--file``, else ACCORD_SOURCES_FILE, else ./sources.yaml; the
database is DATABASE_URL (the sources service's tables are created if missing). Secrets the
sources name (a DSN, a bind password, a token) are read from this process's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from accord.events.cli import EXIT_USAGE, CliError
from accord.runtime.cli_scaffold import add_action, add_actions, add_json, add_limit, int_between

if TYPE_CHECKING:
    import asyncpg

    from accord.sources.config import Source, SourcesFile
    from accord.sources.runner import RunReport

# The runner is imported by the commands that run (it brings every reader's client: ldap3,
# httpx, asyncmy): `accord --help` and the other commands do not pay for it.

DEFAULT_FILE = Path("sources.yaml")


def register_sources(commands: Any) -> None:
    """Add `accord sources` to the accord command."""
    actions = add_actions(
        commands,
        "sources",
        help="run authoritative sources (HR exports, databases, directories), see and decide runs",
        description="Sources turn HR exports, HR databases and directories into identity "
        "events, publishing only what changed. The sources are --file, else "
        "ACCORD_SOURCES_FILE, else ./sources.yaml; the database is DATABASE_URL.",
    )
    run_parser = add_action(
        actions, "run", _run, help="run a source now (or, with --dry-run, show what it would do)"
    )
    run_parser.add_argument("name", metavar="NAME", help="the source's name in sources.yaml")
    run_parser.add_argument(
        "--dry-run", action="store_true", help="print what would be published; write nothing"
    )
    run_parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress line on stderr (default: when stderr is a terminal)",
    )
    add_json(run_parser, "print the events (dry run) and the summary as JSON lines")
    _add_file(run_parser)
    status = add_action(actions, "status", _status, help="every source and its last run")
    add_json(status)
    _add_file(status)
    listing = add_action(actions, "runs", _runs, help="runs, newest first")
    listing.add_argument("--source", metavar="NAME", help="only this source's runs")
    add_limit(listing, 20, type=int_between(1, 10_000, "limit"))
    add_json(listing)
    show = add_action(actions, "show", _show, help="one run: counts, reason, problems by row")
    show.add_argument("run_id", metavar="RUN")
    for verb, func in (("approve", _approve), ("reject", _reject)):
        decide = add_action(
            actions,
            verb,
            func,
            help=f"{verb} a run held at the safety limit",
            description="approve publishes the held run's events as planned and keeps its "
            "state; reject drops them (the source's state stays as it was).",
        )
        decide.add_argument("run_id", metavar="RUN")
        decide.add_argument(
            "--as", dest="operator", required=True, metavar="USER",
            help="who decides (recorded with the run)",
        )  # fmt: skip
        if verb == "reject":
            decide.add_argument("--reason", required=True, help="why, for the audit log")


def _add_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", type=Path, metavar="PATH",
        help="sources.yaml (default: ACCORD_SOURCES_FILE, else ./sources.yaml)",
    )  # fmt: skip


def sources_file(args: argparse.Namespace) -> SourcesFile:
    """The configured sources, or one readable line about why not."""
    from accord.sources.config import SourcesConfigError, load_sources

    path = args.file or Path(os.environ.get("ACCORD_SOURCES_FILE") or DEFAULT_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}", EXIT_USAGE) from None
    try:
        return load_sources(text)
    except SourcesConfigError as error:
        raise CliError(f"{path}: {error}", EXIT_USAGE) from None


def _source(args: argparse.Namespace) -> Source:
    configured = sources_file(args)
    for source in configured.sources:
        if source.name == args.name:
            return source
    names = ", ".join(source.name for source in configured.sources) or "none"
    raise CliError(f"no source {args.name!r} (configured: {names})", EXIT_USAGE)


async def _migrate(dsn: str) -> None:
    from accord.runtime import db
    from accord.sources.settings import SERVICE

    await db.migrate(dsn, SERVICE, ["accord.sources.migrations"])


def _on_database(work: Callable[[asyncpg.Pool], Any]) -> int:
    from accord.runtime.cli_support import run_on_database
    from accord.sources.settings import SERVICE

    code: int = run_on_database(work, schema=SERVICE, prepare=_migrate)
    return code


def _run(args: argparse.Namespace) -> int:
    from accord.sources.runner import RunFailed, RunRefused, run_source
    from accord.sources.settings import SERVICE

    source = _source(args)
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    progress = _Progress(sys.stderr) if show_progress else None

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            try:
                report = await run_source(
                    conn, SERVICE, source, trigger="command", dry_run=args.dry_run,
                    progress=progress,
                )  # fmt: skip
            except RunRefused as error:
                raise CliError(str(error)) from None
            except RunFailed as error:
                recorded = (
                    f" (run {error.record.run_id} recorded as failed)" if error.record else ""
                )
                raise CliError(f"source {source.name!r}: {error}{recorded}") from None
        if progress is not None:
            progress.done()
        _print_report(report, dry_run=args.dry_run, as_json=args.json)
        return 0

    return _on_database(work)


class _Progress:
    """Rows read so far and the rate, rewritten in place on stderr."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        self.rows = 0

    def __call__(self, rows: int) -> None:
        self.rows = rows
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self.out.write(f"\rreading: {rows:,} rows ({rows / elapsed:,.0f} rows/s)")
        self.out.flush()

    def done(self) -> None:
        self.out.write("\n")
        self.out.flush()


def _print_report(report: RunReport, *, dry_run: bool, as_json: bool) -> None:
    from accord.events import to_kafka
    from accord.sources.runs import COUNTED

    record = report.record
    summary = {
        "run_id": None if dry_run else record.run_id,
        "source": record.source,
        "outcome": "dry-run" if dry_run else record.status,
        "would_hold": report.verdict.held if dry_run else None,
        "rows_read": record.rows_read,
        **record.counts,
        "problems": record.problem_count,
        "reason": record.reason,
    }
    if as_json:
        for event in report.events:
            print(to_kafka(event).value.decode())
        print(json.dumps({"summary": summary}))
        return
    for event in report.events:
        print(_event_line(event))
    for problem in report.problems[:50]:
        print(f"problem: {problem}")
    if len(report.problems) > 50:
        print(f"... and {len(report.problems) - 50} more problems")
    counts = ", ".join(f"{record.counts.get(name, 0)} {name}" for name in COUNTED)
    if dry_run:
        verdict = (
            "would be HELD: " + (record.reason or "") if report.verdict.held else "would publish"
        )
        print(f"dry run of {record.source}: {record.rows_read} rows read; {counts}; "
              f"{record.problem_count} problems; {verdict}")  # fmt: skip
    elif record.status == "held":
        print(f"run {record.run_id} HELD, nothing published: {record.reason}")
        print(f"  {counts}; decide with: accord sources approve|reject {record.run_id} --as USER")
    else:
        print(f"run {record.run_id} published {report.published} events: {record.rows_read} "
              f"rows read; {counts}; {record.problem_count} problems")  # fmt: skip


def _event_line(event: Any) -> str:
    data = event.data
    changed = getattr(data, "changed", None)
    detail = f" {data.user_name}" if hasattr(data, "user_name") else ""
    if changed:
        detail += f" changed: {', '.join(changed)}"
    return f"{event.type:<18} {event.subject:<24} seq {event.sequence}{detail}"


def _status(args: argparse.Namespace) -> int:
    from accord.sources.store import key_counts, last_runs

    configured = sources_file(args)

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            last = await last_runs(conn)
            keys = await key_counts(conn)
        for source in configured.sources:
            when = source.schedule or ("watch" if source.watch else "on demand")
            held = keys.get(source.name, {})
            newest = last.get(source.name)
            entry = {
                "source": source.name,
                "kind": source.kind,
                "runs": when,
                "active": held.get("active", 0),
                "inactive": held.get("inactive", 0),
                "deleted": held.get("deleted", 0),
                "last_run": None if newest is None else _run_entry(newest),
            }
            if args.json:
                print(json.dumps(entry, default=str))
                continue
            line = (f"{source.name:<20} {source.kind:<5} {when:<14} "
                    f"{entry['active']} active, {entry['inactive']} inactive, "
                    f"{entry['deleted']} gone")  # fmt: skip
            if newest is None:
                line += "; never ran"
            else:
                started = f"{newest['started_at']:%Y-%m-%d %H:%M:%S}"
                line += f"; last run {newest['run_id']} {newest['status']} {started}"
                if newest["status"] == "held":
                    line += " (waits for approve|reject)"
            print(line)
        return 0

    return _on_database(work)


def _run_entry(row: Any) -> dict[str, Any]:
    entry = dict(row)
    entry["counts"] = json.loads(entry["counts"])
    if "problems" in entry:
        entry["problems"] = json.loads(entry["problems"])
    return entry


def _runs(args: argparse.Namespace) -> int:
    from accord.sources.runs import COUNTED
    from accord.sources.store import runs

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            found = await runs(conn, args.source, args.limit)
        for row in found:
            entry = _run_entry(row)
            if args.json:
                print(json.dumps(entry, default=str))
                continue
            counts = " ".join(f"{name}={entry['counts'].get(name, 0)}" for name in COUNTED)
            print(f"{entry['run_id']}  {entry['source']:<16} {entry['status']:<9} "
                  f"{entry['trigger']:<8} {entry['started_at']:%Y-%m-%d %H:%M:%S}  "
                  f"rows={entry['rows_read']} {counts} "
                  f"problems={entry['problem_count']}")  # fmt: skip
        return 0

    return _on_database(work)


def _show(args: argparse.Namespace) -> int:
    from accord.sources.store import run

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            row = await run(conn, args.run_id)
        if row is None:
            raise CliError(f"no run {args.run_id}")
        print(json.dumps(_run_entry(row), default=str, indent=2))
        return 0

    return _on_database(work)


def _approve(args: argparse.Namespace) -> int:
    from accord.sources.runner import RunRefused, approve
    from accord.sources.runs import COUNTED
    from accord.sources.settings import SERVICE

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            try:
                record = await approve(conn, SERVICE, args.run_id, args.operator)
            except RunRefused as error:
                raise CliError(str(error)) from None
        total = sum(record.counts.get(name, 0) for name in COUNTED if name != "linked")
        print(f"run {record.run_id} approved: {total} events published for {record.source}")
        return 0

    return _on_database(work)


def _reject(args: argparse.Namespace) -> int:
    from accord.sources.runner import RunRefused, reject
    from accord.sources.settings import SERVICE

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            try:
                record = await reject(conn, SERVICE, args.run_id, args.operator, args.reason)
            except RunRefused as error:
                raise CliError(str(error)) from None
        print(f"run {record.run_id} rejected: nothing published for {record.source}")
        return 0

    return _on_database(work)
