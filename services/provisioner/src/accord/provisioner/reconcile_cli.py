"""`accord reconcile TARGET`: compare a target with what identities should have there.

Needs DATABASE_URL (the provisioner's ledger and outbox) and ACCORD_TARGETS_FILE (how to
reach the target, with its secrets from the environment as the service reads them). The
findings leave as events through the provisioner's outbox; the running provisioner's relay
publishes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from accord.events.cli import EXIT_USAGE, CliError
from accord.runtime.cli_scaffold import add_command, add_json, int_between

if TYPE_CHECKING:
    import asyncpg

    from accord.provisioner.domain.reconcile import Tally
    from accord.provisioner.reconcile import Summary
    from accord.provisioner.targets import Target


SCHEMA = "provisioner"
SOURCE = "accord/provisioner/cli"
#: The reconciler's page size (accord.provisioner.reconcile.PAGE_SIZE), the --page-size
#: default: said here so that registering the command imports no reconciler (a test keeps
#: the two equal).
PAGE_SIZE = 200


def register_reconcile(commands: Any) -> None:
    """Add `accord reconcile` to the accord command."""
    p = add_command(
        commands,
        "reconcile",
        _reconcile,
        help="compare a target's accounts with what identities should have there",
        description="Read every account in TARGET, compare it with the provisioner's ledger "
        "(what the orchestrator last asked for), and report drifted, missing and orphan "
        "accounts as account.drift_detected / account.orphan_detected events. --fix repairs "
        "drifted and missing accounts and deletes not_entitled ones (their identity left); "
        "other orphans are only reported. Needs DATABASE_URL and ACCORD_TARGETS_FILE.",
    )
    p.add_argument("target", nargs="?", help="target name, as in the targets file")
    p.add_argument(
        "--fix",
        action="store_true",
        help="repair drifted and missing accounts, delete not_entitled ones",
    )
    p.add_argument(
        "--page-size",
        type=int_between(1, 1000, "_page_size"),
        default=PAGE_SIZE,
        help=f"accounts per page ({PAGE_SIZE})",
    )
    add_json(p, "print the summary as JSON")
    p.add_argument(
        "--history", action="store_true", help="list the latest runs (of TARGET, or all)"
    )


def _reconcile(args: argparse.Namespace) -> int:
    from accord.provisioner.bootstrap import connector_for, guard_for
    from accord.provisioner.reconcile import Reconciler, ReconciliationBusy, ReconciliationFailed
    from accord.provisioner.targets import TargetsFileError
    from accord.runtime.cli_support import run_on_database

    if args.history:
        return _history(args.target)
    if not args.target:
        raise CliError("name the target to reconcile (see --help)")
    target = _target(args.target)
    try:
        connector = connector_for(target)
    except TargetsFileError as error:  # a secret's variable is not set
        raise CliError(str(error), EXIT_USAGE) from None
    progress = ProgressLine(sys.stderr, target.name)

    async def work(pool: asyncpg.Pool) -> int:
        try:
            reconciler = Reconciler(pool, SCHEMA, SOURCE, connector, guard_for(target))
            summary = await reconciler.run(
                fix=args.fix, trigger="cli", page_size=args.page_size, progress=progress.show
            )
        except (ReconciliationBusy, ReconciliationFailed) as error:
            raise CliError(str(error)) from None
        finally:
            progress.done()
            await connector.close()
        _print_summary(summary, as_json=args.json)
        return 0

    return run_on_database(work, schema=SCHEMA, no_tables=NO_TABLES)


NO_TABLES = "no provisioner tables in this database: has it run?"


def _target(name: str) -> Target:
    from accord.provisioner.bootstrap import checked_targets
    from accord.provisioner.settings import ProvisionerSettings
    from accord.provisioner.targets import TargetsFileError

    settings = ProvisionerSettings()  # one that does not parse: `accord` says which, in a line
    try:
        targets = checked_targets(settings)
    except (TargetsFileError, ValueError) as error:
        raise CliError(str(error)) from None
    for target in targets:
        if target.name == name:
            return target
    known = ", ".join(t.name for t in targets) or "none"
    raise CliError(f"no target named {name!r} in the targets file (known: {known})")


def _history(target: str | None) -> int:
    from accord.provisioner.adapters import ledger
    from accord.runtime.cli_support import run_on_database

    async def work(pool: asyncpg.Pool) -> int:
        for run in await ledger.runs(pool, target, limit=20):
            counts = run["summary"] or {}
            print(
                f"{run['run_id']}  {run['target']:<16} {run['trigger']:<8} {run['status']:<9} "
                f"{run['started_at'][:19]}  accounts={counts.get('accounts', '-')} "
                f"drifted={counts.get('drifted', '-')} missing={counts.get('missing', '-')} "
                f"orphans={counts.get('orphans', '-')}"
                + (f"  error: {run['error']}" if run["error"] else "")
            )
        return 0

    return run_on_database(work, schema=SCHEMA)


def _print_summary(summary: Summary, *, as_json: bool) -> None:
    t = summary.tally
    counts = {
        "run_id": summary.run_id,
        "target": summary.target,
        "accounts": t.accounts,
        "in_sync": t.in_sync,
        "drifted": t.drifted,
        "missing": t.missing,
        "orphans": t.orphans,
        "repaired": t.repairs,
        "repair_failures": t.repair_failures,
        "duration_ms": summary.duration_ms,
    }
    if as_json:
        print(json.dumps(counts))
        return
    print(f"reconciled {summary.target} in {summary.duration_ms / 1000:.1f} s ({summary.run_id})")
    for key in ("accounts", "in_sync", "drifted", "missing", "orphans", "repaired"):
        print(f"  {key.replace('_', ' '):<16}{counts[key]:>8}")
    if t.repair_failures:
        print(f"  {'repair failures':<16}{t.repair_failures:>8}")


class ProgressLine:
    """Progress on a terminal: one line redrawn in place; elsewhere a line every few seconds."""

    def __init__(self, stream: TextIO, target: str, *, every_s: float = 5.0) -> None:
        self._stream = stream
        self._target = target
        self._tty = stream.isatty()
        self._every_s = every_s
        self._started = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def show(self, tally: Tally) -> None:
        """Report the counts so far."""
        now = time.monotonic()
        if not self._tty and now - self._last < self._every_s:
            return
        self._last = now
        rate = tally.accounts / max(now - self._started, 1e-6)
        line = (
            f"reconciling {self._target}: {tally.accounts} accounts read ({rate:.0f}/s), "
            f"{tally.drifted} drifted, {tally.missing} missing, {tally.orphans} orphans"
        )
        if self._tty:
            self._stream.write("\r\033[K" + line)
            self._drawn = True
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def done(self) -> None:
        """End the redrawn line."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
