"""A leaver loses every account whatever the order of events and failures (issue 17, item 1).

The real handlers on a real PostgreSQL, with a simulated provisioner and targets
(`accord.orchestrator.testing.World`), driven into the orders the platform can produce:
a target down while joiners and leavers flow, answers lost after the target did the work,
timers firing before or after results, operators retrying.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.events import UserCreated, UserDeactivated, UserDeleted, UserReactivated, UserUpdated
from accord.orchestrator import sagas
from accord.orchestrator.adapters import store
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.birthright import Birthright, Rule
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.testing import SOURCE, Target, World
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
#: Everyone gets crm; the engineers get wiki as well (a mover can gain or lose it).
BIRTHRIGHT = Birthright(
    rules=[
        Rule(name="everyone", targets=["crm"]),
        Rule(name="engineers", when={"department": "Eng"}, targets=["wiki"]),
    ]
)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(
        fresh_database, SCHEMA, ["accord.orchestrator.migrations"], max_size=4
    ) as made:
        yield made


def world(pool: asyncpg.Pool, *, transient_rounds: int = 2) -> World:
    flows = WorkflowSettings(
        birthright=BIRTHRIGHT,
        leaver_retention=timedelta(days=30),
        transient_rounds=transient_rounds,
    )
    return World(pool, flows, SCHEMA, {"crm": Target(), "wiki": Target()})


def joiner(user: str, department: str = "Eng") -> UserCreated:
    return UserCreated(user_id=user, user_name=user, department=department)


async def saga_rows(pool: asyncpg.Pool, user: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT saga_type, status FROM sagas WHERE subject_id = $1 ORDER BY seq", user
    )
    return [(r["saga_type"], r["status"]) for r in rows]


async def test_a_leaver_during_a_failed_joiners_backoff_leaves_no_account(
    pool: asyncpg.Pool,
) -> None:
    """The traced path: the joiner's create fails (circuit open), the deactivation and the
    deletion arrive while it waits for its retry, retention passes, the retry fires."""
    w = world(pool)
    user = f"u-{uuid.uuid4().hex[:8]}"
    w.targets["wiki"].up = False
    await w.deliver(w.source_event(joiner(user), user))
    await w.drain()  # crm created; wiki failed: the joiner waits for its own retry
    assert w.targets["crm"].accounts == {user: True}

    await w.deliver(w.source_event(UserDeactivated(user_id=user), user))
    await w.deliver(w.source_event(UserDeleted(user_id=user), user))
    w.targets["wiki"].up = True
    await w.drain()
    await w.fire_timers("account_deletion")  # retention is over before the retry is due
    await w.fire_timers("saga_retry")
    await w.settle()

    assert await w.violations() == []
    assert w.targets["wiki"].accounts == {}


async def test_a_leaver_behind_a_running_joiner_waits_for_the_joiners_retries(
    pool: asyncpg.Pool,
) -> None:
    """The second path: the leaver queued behind a running joiner must not begin when the
    joiner's round fails but will retry, or it finds no account and the retry makes one."""
    w = world(pool)
    user = f"u-{uuid.uuid4().hex[:8]}"
    await w.deliver(w.source_event(joiner(user), user))
    await w.deliver(w.source_event(UserDeactivated(user_id=user), user))  # queued
    w.targets["wiki"].up = False
    await w.drain()
    await w.deliver(w.source_event(UserDeleted(user_id=user), user))
    w.targets["wiki"].up = True
    await w.drain()
    await w.fire_timers("account_deletion")
    await w.fire_timers("saga_retry")
    await w.settle()

    assert await w.violations() == []


async def test_an_account_created_though_its_answer_was_lost_goes_with_its_leaver(
    pool: asyncpg.Pool,
) -> None:
    """The target created the account but the provisioner's call timed out: the step
    failed, yet the account exists. The leaver must disable and delete it all the same."""
    w = world(pool)
    user = f"u-{uuid.uuid4().hex[:8]}"
    w.targets["wiki"].answers = False
    await w.deliver(w.source_event(joiner(user), user))
    await w.drain()
    assert w.targets["wiki"].accounts == {user: True}  # there, though the saga failed

    await w.deliver(w.source_event(UserDeleted(user_id=user), user))
    await w.settle()

    assert await w.violations() == []
    assert await store.account_targets(pool, user, requested=True) == []


async def test_an_operator_retry_waits_while_another_saga_holds_the_identity(
    pool: asyncpg.Pool,
) -> None:
    w = world(pool, transient_rounds=0)
    user = f"u-{uuid.uuid4().hex[:8]}"
    w.targets["wiki"].up = False
    await w.deliver(w.source_event(joiner(user), user))
    await w.drain()  # the joiner failed and does not retry by itself
    await w.deliver(w.source_event(UserUpdated(user_id=user, user_name=user, title="X"), user))
    joiner_id = await pool.fetchval(
        "SELECT saga_id FROM sagas WHERE subject_id = $1 AND saga_type = 'joiner'", user
    )

    with pytest.raises(sagas.SagaConflict, match="in flight"):
        await sagas.operate(
            pool,
            schema=SCHEMA,
            source=SOURCE,
            workflows=w.flows,
            saga_id=joiner_id,
            action=saga.RetryRequested(),
        )
    await w.settle()
    assert await w.violations() == []


async def test_a_returning_identity_gets_the_accounts_a_superseded_joiner_never_made(
    pool: asyncpg.Pool,
) -> None:
    w = world(pool)
    user = f"u-{uuid.uuid4().hex[:8]}"
    w.targets["wiki"].up = False
    await w.deliver(w.source_event(joiner(user), user))
    await w.drain()
    await w.deliver(w.source_event(UserDeleted(user_id=user), user))  # supersedes the joiner
    w.targets["wiki"].up = True
    await w.drain()
    await w.deliver(w.source_event(UserReactivated(user_id=user), user))
    await w.settle()

    assert await w.violations() == []
    assert w.targets["wiki"].accounts == {user: True}
    assert ("joiner", "cancelled") in await saga_rows(pool, user)


# --- any interleaving ---------------------------------------------------------------------

LIFECYCLE = st.lists(
    st.sampled_from(["move", "deactivate", "reactivate", "delete"]), min_size=1, max_size=4
)
STEP = st.one_of(
    st.sampled_from(["source", "command", "command", "result", "result", "timers", "retry"]),
    st.tuples(st.sampled_from(["down", "up", "mute"]), st.sampled_from(["crm", "wiki"])),
)


def lifecycle_event(kind: str, user: str, eng: bool) -> object:
    if kind == "move":
        return UserUpdated(user_id=user, user_name=user, department="Eng" if eng else "Ops")
    return {
        "deactivate": UserDeactivated(user_id=user),
        "reactivate": UserReactivated(user_id=user),
        "delete": UserDeleted(user_id=user),
    }[kind]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lifecycle=LIFECYCLE, steps=st.lists(STEP, max_size=40), data=st.data())
async def test_any_interleaving_of_lifecycle_failures_and_retries_ends_in_accord(
    pool: asyncpg.Pool, lifecycle: list[str], steps: list[object], data: st.DataObject
) -> None:
    """Whatever the order of an identity's events, the provisioner's work and answers,
    outages, lost answers, timers and operator retries: once the targets are back and
    everything settled, its accounts are what its status and birthright say."""
    w = world(pool)
    user = f"u-{uuid.uuid4().hex[:10]}"
    events = [w.source_event(joiner(user), user)]
    for number, kind in enumerate(lifecycle):
        events.append(w.source_event(lifecycle_event(kind, user, number % 2 == 1), user))  # type: ignore[arg-type]
    # The source's events may arrive in any order (sequences sort them out).
    pending = data.draw(st.permutations(events))
    for step in steps:
        if step == "source" and pending:
            await w.deliver(pending.pop(0))
        elif step == "command":
            await w.run_command()
        elif step == "result":
            await w.take_result()
        elif step == "timers":
            await w.fire_timers()
        elif step == "retry":
            await w.retry_failed()
        elif isinstance(step, tuple):
            action, name = step
            target = w.targets[name]
            if action == "down":
                target.up = False
            elif action == "mute":
                target.answers = False
            else:
                target.up = target.answers = True
    for event in pending:
        await w.deliver(event)
    await w.settle()

    assert await w.violations() == []
