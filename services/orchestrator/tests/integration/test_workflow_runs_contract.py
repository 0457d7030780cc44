"""The workflow run stores' contract: the same cases against the in-memory fakes and the
PostgreSQL adapters (migration 0014), so the engine's unit tests on the fakes cannot drift
from the tables.

Each `stores` case runs in a transaction rolled back at its end. The races (two starts for
one identity, two claimers, a claimer that rolls back) need two connections and commits:
they run on PostgreSQL only, in a database of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.orchestrator.adapters.workflow_runs import PostgresRuns, PostgresTimers, PostgresWakeups
from accord.orchestrator.workflows.durations import parse_duration
from accord.orchestrator.workflows.fakes import FakeRuns, FakeTimers, FakeWakeups
from accord.orchestrator.workflows.ports import (
    Conflict,
    IdentityBusy,
    RunStore,
    TimerStore,
    WakeupStore,
)
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskRun, TaskStatus, Wakeup
from accord.orchestrator.workflows.timers import Timer, TimerKey, TimeTrigger
from accord.stack.testing import migrated_pool

from .contract_kit import rolled_back

pytestmark = pytest.mark.integration

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
MIGRATIONS = ["accord.orchestrator.migrations"]


@dataclass
class Stores:
    runs: RunStore
    wakeups: WakeupStore
    timers: TimerStore


@pytest_asyncio.fixture(loop_scope="session", params=["fake", "postgres"])
async def stores(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> AsyncIterator[Stores]:
    if request.param == "fake":
        yield Stores(FakeRuns(), FakeWakeups(), FakeTimers())
        return
    async with rolled_back(pool) as conn:
        yield Stores(PostgresRuns(conn), PostgresWakeups(conn), PostgresTimers(conn))


@pytest_asyncio.fixture(loop_scope="session")
async def racing(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of this test's own, whose rows are committed, with room for racers."""
    async with migrated_pool(fresh_database, "orchestrator", MIGRATIONS, max_size=4) as made:
        yield made


def a_run(
    run_id: str, identity_id: str = "u-1", workflow_id: str = "joiner", **fields: object
) -> Run:
    values: dict[str, object] = {
        "run_id": run_id,
        "workflow_id": workflow_id,
        "version": "v-1",
        "identity_id": identity_id,
        "category": "joiner",
        "trigger": {"kind": "event", "event": "user.created", "event_id": f"e-{run_id}"},
        "status": RunStatus.QUEUED,
        "created_at": NOW,
        "updated_at": NOW,
        "tasks": (
            TaskRun("create", 0, "create_accounts", TaskStatus.PENDING),
            TaskRun("welcome", 1, "send_email", TaskStatus.PENDING),
        ),
    }
    values.update(fields)
    return Run(**values)  # type: ignore[arg-type]


def a_timer(identity_id: str, date_value: str, fire_at: datetime, **fields: object) -> Timer:
    key = TimerKey(identity_id, "pre-hire", "v-1", "hire_date", date_value)
    return Timer(key, fire_at, **fields)  # type: ignore[arg-type]


# --- runs -----------------------------------------------------------------------------------


async def test_a_run_starts_running_when_its_identity_is_free_and_queues_otherwise(
    stores: Stores,
) -> None:
    runs = stores.runs
    first = await runs.start(a_run("r-1"))
    second = await runs.start(a_run("r-2", workflow_id="mover"))
    other = await runs.start(a_run("r-3", identity_id="u-2"))

    assert (first.status, first.revision) == (RunStatus.RUNNING, 0)
    assert second.status is RunStatus.QUEUED
    assert other.status is RunStatus.RUNNING  # another identity: its own slot
    assert await runs.get("r-1") == first
    assert await runs.get("r-2") == second
    assert await runs.get("r-none") is None
    assert await runs.active_for("u-1") == first
    assert await runs.active_for("u-3") is None
    assert await runs.next_queued("u-1") is None  # r-1 holds the identity


async def test_a_replayed_start_stores_nothing_and_answers_the_stored_run(stores: Stores) -> None:
    stored = await stores.runs.start(a_run("r-1"))
    again = await stores.runs.start(a_run("r-1", workflow_id="other", status=RunStatus.RUNNING))
    assert again == stored
    page = await stores.runs.runs()
    assert [run.run_id for run in page.runs] == ["r-1"]


async def test_queued_runs_take_their_turn_in_order_and_a_new_run_does_not_jump_the_queue(
    stores: Stores,
) -> None:
    runs = stores.runs
    first = await runs.start(a_run("r-1"))
    await runs.start(a_run("r-2"))
    await runs.start(a_run("r-3"))
    await runs.save(replace(first, status=RunStatus.COMPLETED), first.revision)

    assert await runs.active_for("u-1") is None
    # Between the end of the active run and the start of the next, a new run queues behind.
    late = await runs.start(a_run("r-4"))
    assert late.status is RunStatus.QUEUED

    turn = await runs.next_queued("u-1")
    assert turn is not None
    assert turn.run_id == "r-2"
    begun = await runs.save(replace(turn, status=RunStatus.RUNNING), turn.revision)
    assert await runs.active_for("u-1") == begun
    assert await runs.next_queued("u-1") is None


async def test_a_save_writes_the_whole_run_and_moves_its_revision_on(stores: Stores) -> None:
    runs = stores.runs
    started = await runs.start(a_run("r-1"))
    later = NOW + timedelta(minutes=5)
    waiting = replace(
        started,
        status=RunStatus.WAITING,
        updated_at=later,
        vars={"create": {"accounts": ["ldap", "github"], "count": 2}},
        tasks=(
            TaskRun(
                "create",
                0,
                "create_accounts",
                TaskStatus.COMPLETED,
                attempts=1,
                started_at=NOW,
                finished_at=later,
                outputs={"accounts": ["ldap", "github"], "count": 2},
            ),
            TaskRun(
                "welcome",
                1,
                "send_email",
                TaskStatus.WAITING,
                attempts=2,
                started_at=later,
                waiting_for={"kind": "retry", "until": (later + timedelta(minutes=1)).isoformat()},
                error="smtp 451",
            ),
        ),
    )
    saved = await runs.save(waiting, 0)
    assert saved == replace(waiting, revision=1)
    assert await runs.get("r-1") == saved

    cancelled = replace(saved, status=RunStatus.CANCELLED, cancel_reason="hire rescinded")
    assert (await runs.save(cancelled, 1)).revision == 2
    assert await runs.get("r-1") == replace(cancelled, revision=2)
    assert await runs.active_for("u-1") is None


async def test_a_save_on_a_stale_revision_conflicts_and_changes_nothing(stores: Stores) -> None:
    runs = stores.runs
    started = await runs.start(a_run("r-1"))
    first = await runs.save(replace(started, status=RunStatus.WAITING), 0)
    with pytest.raises(Conflict):
        await runs.save(replace(started, status=RunStatus.FAILED), 0)  # read before `first`
    with pytest.raises(Conflict):
        await runs.save(replace(started, status=RunStatus.FAILED), 5)
    with pytest.raises(Conflict):
        await runs.save(a_run("r-unknown"), 0)
    assert await runs.get("r-1") == first


async def test_a_queued_run_cannot_become_active_beside_another(stores: Stores) -> None:
    runs = stores.runs
    active = await runs.start(a_run("r-1"))
    queued = await runs.start(a_run("r-2"))
    with pytest.raises(IdentityBusy):
        await runs.save(replace(queued, status=RunStatus.RUNNING), 0)
    # The caller's transaction goes on; nothing changed.
    assert await runs.get("r-2") == queued
    assert await runs.active_for("u-1") == active
    # A queued run may be cancelled while another runs.
    assert (await runs.save(replace(queued, status=RunStatus.CANCELLED), 0)).revision == 1


async def test_listings_are_newest_first_filtered_and_paged_stably(stores: Stores) -> None:
    runs = stores.runs
    for n in range(1, 8):
        await runs.start(a_run(f"r-{n}", identity_id=f"u-{n % 3}", workflow_id=f"w-{n % 2}"))

    seen: list[str] = []
    page = await runs.runs(limit=3)
    assert [r.run_id for r in page.runs] == ["r-7", "r-6", "r-5"]
    seen += [r.run_id for r in page.runs]
    # A run started meanwhile shows on a first page, never shifts the next ones.
    await runs.start(a_run("r-8", identity_id="u-9"))
    while page.next is not None:
        page = await runs.runs(limit=3, after=page.next)
        seen += [r.run_id for r in page.runs]
    assert seen == ["r-7", "r-6", "r-5", "r-4", "r-3", "r-2", "r-1"]

    exact = await runs.runs(limit=2, identity_id="u-1")  # r-1, r-4, r-7
    assert [r.run_id for r in exact.runs] == ["r-7", "r-4"]
    rest = await runs.runs(limit=2, identity_id="u-1", after=exact.next)
    assert ([r.run_id for r in rest.runs], rest.next) == (["r-1"], None)

    by_workflow = await runs.runs(workflow_id="w-0")
    assert [r.run_id for r in by_workflow.runs] == ["r-6", "r-4", "r-2"]
    queued = await runs.runs(status=RunStatus.QUEUED)
    assert [r.run_id for r in queued.runs] == ["r-7", "r-6", "r-5", "r-4"]
    both = await runs.runs(identity_id="u-1", status=RunStatus.RUNNING, workflow_id="w-1")
    assert [r.run_id for r in both.runs] == ["r-1"]
    assert (await runs.runs(workflow_id="none")).runs == ()
    with pytest.raises(ValueError, match="cursor"):
        await runs.runs(after="r-3")


# --- wake-ups -------------------------------------------------------------------------------


async def test_wakeups_are_moved_by_their_key_and_claimed_once_earliest_first(
    stores: Stores,
) -> None:
    wakeups = stores.wakeups
    await wakeups.schedule(
        [
            Wakeup("r-1", "welcome", "retry", NOW + timedelta(seconds=30)),
            Wakeup("r-1", "approve", "approval_timeout", NOW + timedelta(days=7)),
            Wakeup("r-2", "wait", "wait", NOW - timedelta(seconds=5)),
            Wakeup("r-3", "hand-over", "callback_timeout", NOW + timedelta(hours=1)),
            Wakeup("r-4", "payroll", "access_timeout", NOW + timedelta(days=9)),
        ]
    )
    # Scheduled again: moved, not doubled (the last of a batch counts).
    await wakeups.schedule(
        [
            Wakeup("r-1", "welcome", "retry", NOW + timedelta(hours=1)),
            Wakeup("r-1", "welcome", "retry", NOW - timedelta(seconds=10)),
        ]
    )
    await wakeups.schedule([])

    due = await wakeups.claim_due(NOW, limit=10)
    assert due == [
        Wakeup("r-1", "welcome", "retry", NOW - timedelta(seconds=10)),
        Wakeup("r-2", "wait", "wait", NOW - timedelta(seconds=5)),
    ]
    assert await wakeups.claim_due(NOW, limit=10) == []  # claimed once

    later = NOW + timedelta(days=8)
    first = await wakeups.claim_due(later, limit=1)
    assert first == [Wakeup("r-3", "hand-over", "callback_timeout", NOW + timedelta(hours=1))]
    assert await wakeups.claim_due(later, limit=5) == [
        Wakeup("r-1", "approve", "approval_timeout", NOW + timedelta(days=7))
    ]
    assert await wakeups.claim_due(NOW + timedelta(days=9), limit=5) == [
        Wakeup("r-4", "payroll", "access_timeout", NOW + timedelta(days=9))
    ]


async def test_cancelling_forgets_a_runs_wakeups_or_one_tasks(stores: Stores) -> None:
    wakeups = stores.wakeups
    await wakeups.schedule(
        [
            Wakeup("r-1", "welcome", "retry", NOW),
            Wakeup("r-1", "approve", "approval_timeout", NOW),
            Wakeup("r-1", "approve", "retry", NOW),
            Wakeup("r-2", "welcome", "retry", NOW),
        ]
    )
    await wakeups.cancel("r-1", "approve")
    assert await wakeups.claim_due(NOW, limit=10) == [
        Wakeup("r-1", "welcome", "retry", NOW),
        Wakeup("r-2", "welcome", "retry", NOW),
    ]
    await wakeups.schedule([Wakeup("r-1", "a", "wait", NOW), Wakeup("r-2", "b", "wait", NOW)])
    await wakeups.cancel("r-1")
    assert await wakeups.claim_due(NOW, limit=10) == [Wakeup("r-2", "b", "wait", NOW)]


# --- timers ---------------------------------------------------------------------------------


async def test_an_upsert_by_timer_id_moves_a_timer(stores: Stores) -> None:
    timers = stores.timers
    hire = a_timer("u-1", "2027-03-08", NOW + timedelta(days=7))
    other = a_timer("u-2", "2027-04-01", NOW + timedelta(days=30))
    await timers.upsert([hire, other])
    assert await timers.for_identity("u-1") == [hire]

    moved = replace(hire, fire_at=NOW + timedelta(days=7, hours=3))  # a new time zone
    await timers.upsert([moved])
    assert await timers.for_identity("u-1") == [moved]
    assert await timers.for_identity("u-2") == [other]
    assert await timers.for_identity("u-3") == []


async def test_cancel_leaves_fired_timers_alone_and_nothing_brings_a_fired_one_back(
    stores: Stores,
) -> None:
    timers = stores.timers
    due = a_timer("u-1", "2027-02-01", NOW - timedelta(minutes=1))
    pending = a_timer("u-1", "2027-03-08", NOW + timedelta(days=7))
    await timers.upsert([due, pending])
    assert await timers.claim_due(NOW, limit=10) == [due.fired()]

    await timers.cancel([due.timer_id, pending.timer_id, "wft-unknown"])
    assert await timers.for_identity("u-1") == [
        due.fired(),
        replace(pending, state="cancelled"),
    ]
    # A stale plan scheduling the fired key again changes nothing; a cancelled key comes back.
    await timers.upsert([due, pending])
    assert await timers.for_identity("u-1") == [due.fired(), pending]


async def test_due_timers_are_claimed_once_earliest_first_and_marked_fired(
    stores: Stores,
) -> None:
    timers = stores.timers
    late = a_timer("u-1", "2027-02-27", NOW - timedelta(hours=2))
    now = a_timer("u-2", "2027-03-01", NOW)
    early = a_timer("u-3", "2027-02-26", NOW - timedelta(hours=3))
    future = a_timer("u-4", "2027-03-02", NOW + timedelta(seconds=1))
    await timers.upsert([late, now, early, future])

    assert await timers.claim_due(NOW, limit=2) == [early.fired(), late.fired()]
    assert await timers.claim_due(NOW, limit=2) == [now.fired()]
    assert await timers.claim_due(NOW, limit=2) == []
    assert await timers.for_identity("u-4") == [future]


async def test_mark_sets_a_timers_state(stores: Stores) -> None:
    timers = stores.timers
    timer = a_timer("u-1", "2027-02-01", NOW - timedelta(days=3))
    await timers.upsert([timer])
    assert await timers.mark(timer.timer_id, "skipped") is True
    assert await timers.mark("wft-unknown", "skipped") is False
    assert await timers.for_identity("u-1") == [replace(timer, state="skipped")]
    assert await timers.claim_due(NOW, limit=10) == []


async def test_cancel_stale_cancels_the_scheduled_timers_no_trigger_plans_any_more(
    stores: Stores,
) -> None:
    timers = stores.timers
    kept = a_timer("u-1", "2027-03-08", NOW + timedelta(days=7))
    old_version = Timer(replace(kept.key, identity_id="u-2", version="v-0"), kept.fire_at)
    other_date = Timer(replace(kept.key, identity_id="u-3", attribute="start_date"), kept.fire_at)
    custom = Timer(
        TimerKey("u-4", "contract-end", "v-1", "attributes.contract_end", "2027-06-30"),
        NOW + timedelta(days=90),
    )
    fired = a_timer("u-5", "2027-02-01", NOW - timedelta(days=1))
    await timers.upsert([kept, old_version, other_date, custom, fired])
    assert await timers.claim_due(NOW, limit=10) == [fired.fired()]
    offset = parse_duration("-P7D")
    pre_hire = TimeTrigger("pre-hire", "v-1", "hire_date", offset, "UTC")
    contract_end = TimeTrigger("contract-end", "v-1", "attributes.contract_end", offset, "UTC")

    assert await timers.cancel_stale([pre_hire, contract_end]) == 2
    assert await timers.cancel_stale([pre_hire, contract_end]) == 0
    states = {
        identity: [t.state for t in await timers.for_identity(identity)]
        for identity in ("u-1", "u-2", "u-3", "u-4", "u-5")
    }
    assert states == {
        "u-1": ["scheduled"],
        "u-2": ["cancelled"],
        "u-3": ["cancelled"],
        "u-4": ["scheduled"],
        "u-5": ["fired"],
    }
    # No trigger left: every scheduled timer goes; a fired one stays fired.
    assert await timers.cancel_stale([]) == 2
    assert [t.state for t in await timers.for_identity("u-4")] == ["cancelled"]
    assert [t.state for t in await timers.for_identity("u-5")] == ["fired"]


# --- races on PostgreSQL --------------------------------------------------------------------


async def test_two_concurrent_starts_for_one_identity_leave_one_running_one_queued(
    racing: asyncpg.Pool,
) -> None:
    async with racing.acquire() as first_conn, racing.acquire() as second_conn:
        first_tx, second_tx = first_conn.transaction(), second_conn.transaction()
        await first_tx.start()
        await second_tx.start()
        first = await PostgresRuns(first_conn).start(a_run("r-1"))
        # Neither saw an active run; the second insert waits on the first's index entry.
        second_start = asyncio.create_task(PostgresRuns(second_conn).start(a_run("r-2")))
        await asyncio.sleep(0.2)
        assert not second_start.done()
        await first_tx.commit()
        second = await second_start
        await second_tx.commit()
    assert (first.status, second.status) == (RunStatus.RUNNING, RunStatus.QUEUED)


async def test_a_start_that_rolls_back_leaves_the_identity_to_the_concurrent_one(
    racing: asyncpg.Pool,
) -> None:
    async with racing.acquire() as first_conn, racing.acquire() as second_conn:
        first_tx, second_tx = first_conn.transaction(), second_conn.transaction()
        await first_tx.start()
        await second_tx.start()
        await PostgresRuns(first_conn).start(a_run("r-1"))
        second_start = asyncio.create_task(PostgresRuns(second_conn).start(a_run("r-2")))
        await asyncio.sleep(0.2)
        await first_tx.rollback()
        second = await second_start
        await second_tx.commit()
    assert second.status is RunStatus.RUNNING
    async with racing.acquire() as conn:
        assert await PostgresRuns(conn).get("r-1") is None


async def test_two_concurrent_promotions_leave_one_active_run(racing: asyncpg.Pool) -> None:
    async with racing.acquire() as conn:
        runs = PostgresRuns(conn)
        first = await runs.start(a_run("r-1"))
        second = await runs.start(a_run("r-2"))
        third = await runs.start(a_run("r-3"))
        await runs.save(replace(first, status=RunStatus.COMPLETED), 0)
    async with racing.acquire() as one, racing.acquire() as two:
        one_tx, two_tx = one.transaction(), two.transaction()
        await one_tx.start()
        await two_tx.start()
        await PostgresRuns(one).save(replace(second, status=RunStatus.RUNNING), 0)
        # The other did not see that promotion: the unique index decides once it commits.
        racer = asyncio.create_task(
            PostgresRuns(two).save(replace(third, status=RunStatus.RUNNING), 0)
        )
        await asyncio.sleep(0.2)
        await one_tx.commit()
        with pytest.raises(IdentityBusy):
            await racer
        await two_tx.rollback()
    async with racing.acquire() as conn:
        active = await PostgresRuns(conn).active_for("u-1")
        assert active is not None
        assert active.run_id == "r-2"


async def test_two_claimers_never_take_the_same_wakeup(racing: asyncpg.Pool) -> None:
    scheduled = [Wakeup(f"r-{n}", "task", "retry", NOW - timedelta(seconds=n)) for n in range(20)]
    async with racing.acquire() as conn:
        await PostgresWakeups(conn).schedule(scheduled)
    async with racing.acquire() as one, racing.acquire() as two:
        one_tx, two_tx = one.transaction(), two.transaction()
        await one_tx.start()
        await two_tx.start()
        first = await PostgresWakeups(one).claim_due(NOW, limit=8)
        # The second does not wait for the first: it skips the rows the first holds.
        second = await asyncio.wait_for(PostgresWakeups(two).claim_due(NOW, limit=50), 5)
        await one_tx.commit()
        await two_tx.commit()
    assert len(first) == 8
    assert {w.run_id for w in first}.isdisjoint({w.run_id for w in second})
    assert sorted(first + second, key=lambda w: w.run_id) == sorted(
        scheduled, key=lambda w: w.run_id
    )
    async with racing.acquire() as conn:
        assert await PostgresWakeups(conn).claim_due(NOW, limit=50) == []


async def test_two_claimers_never_take_the_same_timer(racing: asyncpg.Pool) -> None:
    scheduled = [a_timer(f"u-{n}", "2027-03-01", NOW - timedelta(seconds=n)) for n in range(20)]
    async with racing.acquire() as conn:
        await PostgresTimers(conn).upsert(scheduled)
    async with racing.acquire() as one, racing.acquire() as two:
        one_tx, two_tx = one.transaction(), two.transaction()
        await one_tx.start()
        await two_tx.start()
        first = await PostgresTimers(one).claim_due(NOW, limit=8)
        second = await asyncio.wait_for(PostgresTimers(two).claim_due(NOW, limit=50), 5)
        await one_tx.commit()
        await two_tx.commit()
    assert len(first) == 8
    assert {t.timer_id for t in first}.isdisjoint({t.timer_id for t in second})
    assert {t.timer_id for t in first + second} == {t.timer_id for t in scheduled}
    assert all(t.state == "fired" for t in first + second)


async def test_a_claim_rolled_back_leaves_the_timer_and_the_wakeup_claimable(
    racing: asyncpg.Pool,
) -> None:
    """The claim is in the caller's transaction: an orchestrator that dies between claiming
    and committing (its transaction rolls back) loses nothing."""
    timer = a_timer("u-1", "2027-03-01", NOW - timedelta(seconds=1))
    wakeup = Wakeup("r-1", "wait", "wait", NOW - timedelta(seconds=1))
    async with racing.acquire() as conn:
        await PostgresTimers(conn).upsert([timer])
        await PostgresWakeups(conn).schedule([wakeup])

    async with racing.acquire() as crashing:
        transaction = crashing.transaction()
        await transaction.start()
        assert await PostgresTimers(crashing).claim_due(NOW, limit=5) == [timer.fired()]
        assert await PostgresWakeups(crashing).claim_due(NOW, limit=5) == [wakeup]
        async with racing.acquire() as other:  # held by the claimer meanwhile
            assert await PostgresTimers(other).claim_due(NOW, limit=5) == []
            assert await PostgresWakeups(other).claim_due(NOW, limit=5) == []
        await transaction.rollback()

    async with racing.acquire() as conn:
        assert await PostgresTimers(conn).for_identity("u-1") == [timer]
        assert await PostgresTimers(conn).claim_due(NOW, limit=5) == [timer.fired()]
        assert await PostgresWakeups(conn).claim_due(NOW, limit=5) == [wakeup]
        assert await PostgresTimers(conn).claim_due(NOW, limit=5) == []
