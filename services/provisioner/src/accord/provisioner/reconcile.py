"""Reconciliation runs: read every account of a target, compare, report, repair on request.

One run per target at a time (a PostgreSQL advisory lock, so the CLI and the schedules of
several provisioner instances never overlap). Findings leave as events through the outbox,
a page at a time: account.drift_detected, account.orphan_detected, and one
reconciliation.completed with the counts. With `fix`, drifted and missing accounts are
brought back to the ledger's state through the target's guard (its rate limit and circuit
breaker), each repair reported as account.provisioned or account.provision_failed. An
account the ledger says must be gone (`not_entitled`: Accord itself asked for its deletion,
e.g. its identity left) is deleted by `fix` as well; other orphans (unlinked, or linked to
an identity Accord never provisioned there) are reported, never deleted: that is an
operator's decision.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import asyncpg

from accord.events import (
    AccountDriftDetected,
    AccountOrphanDetected,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    ReconciliationCompleted,
    new_event,
)
from accord.events.catalogue import Difference as DifferenceEvent
from accord.provisioner.adapters import ledger
from accord.provisioner.domain.reconcile import (
    Drifted,
    Finding,
    Missing,
    Orphan,
    Tally,
    compare,
)
from accord.provisioner.guard import TargetGuard
from accord.provisioner.ports import (
    AccountRef,
    Connector,
    TargetAccount,
    TargetRejected,
    TargetUnavailable,
)
from accord.runtime import outbox

log = logging.getLogger(__name__)

Trigger = Literal["cli", "schedule"]
Progress = Callable[[Tally], None]
PAGE_SIZE = 200


class ReconciliationBusy(RuntimeError):
    """Another run over the same target is in progress."""


class ReconciliationFailed(RuntimeError):
    """The run stopped early (the target failed while it was being read)."""


@dataclass(frozen=True)
class Summary:
    """What a run found (and repaired)."""

    run_id: str
    target: str
    tally: Tally
    duration_ms: int


@dataclass(frozen=True)
class Reconciler:
    """Reconciles one target; the outbox of `schema` carries its events."""

    pool: asyncpg.Pool
    schema: str
    source: str
    connector: Connector
    guard: TargetGuard

    @property
    def target(self) -> str:
        """The target's name."""
        return self.connector.name

    async def run(
        self,
        *,
        fix: bool = False,
        trigger: Trigger = "cli",
        page_size: int = PAGE_SIZE,
        progress: Progress | None = None,
    ) -> Summary:
        """One full pass over the target. ReconciliationBusy when another is running."""
        run_id = f"rec-{uuid.uuid4().hex[:16]}"
        started = time.monotonic()
        tally = Tally()
        async with self.pool.acquire() as lock:
            key = f"accord-reconcile:{self.target}"
            if not await lock.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
                raise ReconciliationBusy(f"a reconciliation of {self.target} is already running")
            try:
                await ledger.start_run(lock, run_id, self.target, trigger=trigger, fix=fix)
                error = await self._pass(run_id, tally, fix, page_size, progress)
                summary = Summary(run_id, self.target, tally, _ms_since(started))
                await self._finish(lock, summary, error)
            finally:
                await lock.fetchval("SELECT pg_advisory_unlock(hashtext($1))", key)
        if error:
            raise ReconciliationFailed(f"{self.target}: {error}")
        return summary

    async def _pass(
        self, run_id: str, tally: Tally, fix: bool, page_size: int, progress: Progress | None
    ) -> str | None:
        """Compare every account, then look for missing ones; the error that stopped it."""
        seen: set[str] = set()
        try:
            async for page in _pages(self.connector.list_accounts(page_size=page_size), page_size):
                seen.update(a.owner for a in page if a.owner)
                await self._judge_page(run_id, page, tally, fix)
                if progress:
                    progress(tally)
            async with self.pool.acquire() as conn:
                absent = [
                    Missing(desired)
                    async for desired in ledger.present_desired(conn, self.target)
                    if desired.user_id not in seen
                ]
            for start in range(0, len(absent), page_size):
                await self._report(run_id, absent[start : start + page_size], tally, fix)
                if progress:
                    progress(tally)
        except (TargetUnavailable, TargetRejected) as error:
            log.warning(
                "reconciliation stopped", extra={"target": self.target, "error": str(error)}
            )
            return str(error)
        return None

    async def _judge_page(
        self, run_id: str, page: Sequence[TargetAccount], tally: Tally, fix: bool
    ) -> None:
        owners = [a.owner for a in page if a.owner]
        async with self.pool.acquire() as conn:
            desired = await ledger.desired_of(conn, self.target, owners)
        findings = [
            compare(
                account,
                desired.get(account.owner) if account.owner else None,
                managed_fields=self.connector.managed_fields,
                as_stored=self.connector.as_stored,
            )
            for account in page
        ]
        await self._report(run_id, findings, tally, fix)

    async def _report(
        self, run_id: str, findings: Sequence[Finding], tally: Tally, fix: bool
    ) -> None:
        """Count the findings, repair what needs it (with fix), and emit their events."""
        events: list[Envelope] = []
        for finding in findings:
            tally.add(finding)
            data = self._finding_event(run_id, finding, fix)
            if data is not None:
                events.append(self._event(data, run_id))
            if fix and isinstance(finding, Drifted | Missing):
                events.append(self._event(await self._repair(run_id, finding, tally), run_id))
            elif fix and isinstance(finding, Orphan) and finding.reason == "not_entitled":
                events.append(self._event(await self._remove(run_id, finding, tally), run_id))
        async with self.pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, self.schema, events)

    def _finding_event(self, run_id: str, finding: Finding, fix: bool) -> EventData | None:
        common = {"target": self.target, "run_id": run_id}
        if isinstance(finding, Orphan):
            return AccountOrphanDetected(
                **common,
                account_id=finding.account.account_id,
                user_name=finding.account.profile.user_name,
                owner=finding.account.owner,
                reason=finding.reason,
            )
        if isinstance(finding, Drifted):
            return AccountDriftDetected(
                **common,
                user_id=finding.desired.user_id,
                kind="attributes",
                account_id=finding.account.account_id,
                differences=tuple(DifferenceEvent(**asdict(d)) for d in finding.differences),
                repair_requested=fix,
            )
        if isinstance(finding, Missing):
            return AccountDriftDetected(
                **common, user_id=finding.desired.user_id, kind="missing", repair_requested=fix
            )
        return None

    async def _repair(self, run_id: str, finding: Drifted | Missing, tally: Tally) -> EventData:
        """Bring one account to the ledger's state: attributes, then status."""
        desired = finding.desired
        user_name = desired.profile.user_name
        operation: Literal["update", "create"] = (
            "update" if isinstance(finding, Drifted) else "create"
        )
        connector = self.connector

        async def work() -> AccountRef:
            ref = await self.guard.call(
                lambda: connector.update_account(desired.user_id, desired.profile),
                operation="update",
            )
            if desired.state == "disabled":
                await self.guard.call(
                    lambda: connector.disable_account(desired.user_id, user_name),
                    operation="disable",
                )
            else:
                await self.guard.call(
                    lambda: connector.enable_account(desired.user_id, user_name),
                    operation="enable",
                )
            return ref

        return await self._repaired(run_id, desired.user_id, operation, work, tally)

    async def _remove(self, run_id: str, orphan: Orphan, tally: Tally) -> EventData:
        """Delete an account its identity must not have any more (the ledger says absent)."""
        account = orphan.account
        assert account.owner is not None, "a not_entitled account is linked to its identity"
        owner, user_name = account.owner, account.profile.user_name
        connector = self.connector

        async def work() -> AccountRef:
            await self.guard.call(
                lambda: connector.delete_account(owner, user_name), operation="delete"
            )
            return AccountRef(account.account_id, already_existed=False)

        return await self._repaired(run_id, owner, "delete", work, tally)

    async def _repaired(
        self,
        run_id: str,
        user_id: str,
        operation: Literal["create", "update", "delete"],
        work: Callable[[], Awaitable[AccountRef]],
        tally: Tally,
    ) -> EventData:
        """Carry out one repair and count it; its result, as the orchestrator reads results."""
        common = {
            "user_id": user_id,
            "target": self.target,
            "operation": operation,
            "saga_id": run_id,
            "step_id": f"{run_id}:{user_id}",
        }
        try:
            ref = await work()
        except (TargetUnavailable, TargetRejected) as error:
            tally.repair_failures += 1
            return AccountProvisionFailed(
                **common,
                reason=f"repair failed: {error}"[:256],
                retryable=isinstance(error, TargetUnavailable),
            )
        tally.repairs += 1
        return AccountProvisioned(
            **common, account_id=ref.account_id, already_existed=ref.already_existed
        )

    async def _finish(self, conn: asyncpg.Connection, summary: Summary, error: str | None) -> None:
        tally = summary.tally
        completed = ReconciliationCompleted(
            target=self.target,
            run_id=summary.run_id,
            accounts=tally.accounts,
            in_sync=tally.in_sync,
            drifted=tally.drifted,
            missing=tally.missing,
            orphans=tally.orphans,
            repairs_requested=tally.repairs + tally.repair_failures,
            duration_ms=summary.duration_ms,
        )
        counts = completed.model_dump(exclude={"target", "run_id"})
        async with conn.transaction():
            await ledger.finish_run(
                conn,
                summary.run_id,
                summary={
                    **counts,
                    "repaired": tally.repairs,
                    "repair_failures": tally.repair_failures,
                },
                error=error,
            )
            if error is None:
                await outbox.enqueue(conn, self.schema, [self._event(completed, summary.run_id)])

    def _event(self, data: EventData, run_id: str) -> Envelope:
        return new_event(data, source=self.source, correlation_id=run_id)


async def _pages(
    accounts: AsyncIterator[TargetAccount], size: int
) -> AsyncIterator[list[TargetAccount]]:
    """The accounts in lists of `size`."""
    page: list[TargetAccount] = []
    async for account in accounts:
        page.append(account)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def _ms_since(started: float) -> int:
    return max(0, int((time.monotonic() - started) * 1000))
