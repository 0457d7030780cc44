"""A joiner provisioned to a target that throttles, goes down or fails for good (issue 5).

The chaos target is a scim2-server behind a fault proxy; only joiners of the Chaos
department get an account there. The proxy counts what reached the real target, so each
test shows that retries never POSTed a second account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from accord.events import Publisher, UserCreated, topics
from accord.runtime.dlq_tools import DeadLetter, read_dead_letters
from accord.stack.platform import Platform

from .conftest import (
    CHAOS_DEPARTMENT,
    CHAOS_MAX_ATTEMPTS,
    SAGA_TRANSIENT_ROUNDS,
    Chaos,
    accord_cli,
    account_in,
    audit_events,
    eventually,
    joiner_saga,
    users_in,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

OUTAGE_S = 10.0
T = TypeVar("T")
Saga = dict[str, Any]


async def join(kafka_bootstrap: str, unique: str) -> UserCreated:
    """Announce a joiner of the Chaos department."""
    user = UserCreated(
        user_id=f"e-{unique}",
        user_name=f"chaos.{unique}",
        given_name="Grace",
        family_name="Hopper",
        department=CHAOS_DEPARTMENT,
    )
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(user, sequence=1)
    return user


async def saga_when(
    platform: Platform, user_id: str, what: str, holds: Callable[[Saga], bool]
) -> Saga:
    """The joiner saga once `holds` is true of it; its last state is printed on a timeout."""
    last: Saga | None = None

    async def probe() -> Saga | None:
        nonlocal last
        last = await joiner_saga(platform, user_id)
        return last if last is not None and holds(last) else None

    try:
        return await eventually(probe, timeout=60, what=f"the joiner saga {what}")
    except pytest.fail.Exception:
        print(f"the joiner saga of {user_id} as last seen: {last}")
        raise


async def completed_saga(platform: Platform, user_id: str) -> Saga:
    """The joiner saga once it completed."""
    return await saga_when(platform, user_id, "to complete", lambda s: s["status"] == "completed")


async def at_least(count: int, found: Awaitable[list[T]]) -> list[T] | None:
    """What was found, if it is at least count items."""
    items = await found
    return items if len(items) >= count else None


async def provision_failures(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    """The payloads of the identity's account.provision_failed events, from the audit log."""
    records = await audit_events(platform, subject=user_id, type=topics.ACCOUNT_PROVISION_FAILED)
    return [r["payload"] for r in records]


async def exactly_one_account(chaos: Chaos, user: UserCreated) -> dict[str, Any]:
    """The joiner's account in the real target, created by one POST only."""
    try:
        account = await account_in(chaos.upstream, user.user_name)
    except pytest.fail.Exception:
        reached = Counter(r.method for r in chaos.proxy.requests if r.forwarded)
        print(f"requests that reached the chaos target during the test: {dict(reached)}")
        raise
    assert account["externalId"] == user.user_id
    assert len(await users_in(chaos.upstream, user.user_name)) == 1
    assert chaos.proxy.count("POST", containing=user.user_name) == 1, chaos.proxy.requests
    return account


async def test_a_throttling_target_is_retried_after_retry_after(
    platform: Platform, kafka_bootstrap: str, chaos: Chaos, unique: str
) -> None:
    throttled = CHAOS_MAX_ATTEMPTS - 1  # the provisioner's own retries absorb them
    chaos.proxy.status(429, times=throttled, retry_after=1)
    user = await join(kafka_bootstrap, unique)

    await exactly_one_account(chaos, user)
    saga = await completed_saga(platform, user.user_id)
    assert chaos.proxy.count(forwarded=False) == throttled
    (step,) = saga["steps"]
    assert step["attempts"] == 1, "the saga itself had to retry"
    assert await provision_failures(platform, user.user_id) == []


async def test_a_target_down_for_a_while_gets_the_account_once_it_is_back(
    platform: Platform, kafka_bootstrap: str, chaos: Chaos, unique: str
) -> None:
    await chaos.proxy.down(OUTAGE_S)
    user = await join(kafka_bootstrap, unique)

    # Only the proxy reaches the target, so the account can only appear once it is back.
    await exactly_one_account(chaos, user)
    saga = await completed_saga(platform, user.user_id)
    (step,) = saga["steps"]
    assert step["status"] == "done"
    assert step["attempts"] > 1, "the outage was never noticed"
    failures = await provision_failures(platform, user.user_id)
    assert failures, "no account.provision_failed while the target was down"
    assert all(f["retryable"] for f in failures)
    assert "ConnectError" in failures[0]["reason"]


async def dead_letters_of(user_id: str) -> list[DeadLetter]:
    """The identity's provision.requested dead letters."""
    letters = await read_dead_letters(topics.PROVISION_REQUESTED)
    return [x for x in letters if x.header("ce_subject") == user_id]


async def test_a_target_failing_for_good_dead_letters_and_a_replay_heals_the_saga(
    platform: Platform,
    kafka_bootstrap: str,
    chaos: Chaos,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    chaos.proxy.status(500)
    user = await join(kafka_bootstrap, unique)

    failed = await saga_when(
        platform,
        user.user_id,
        f"to fail after {SAGA_TRANSIENT_ROUNDS} retries of its own",
        lambda s: s["status"] == "failed" and s["failures"] > SAGA_TRANSIENT_ROUNDS,
    )
    rounds = failed["failures"]
    (step,) = failed["steps"]
    assert (step["status"], step["retryable"], step["attempts"]) == ("failed", True, rounds)
    assert "500" in step["error"]
    failures = await eventually(
        lambda: at_least(rounds, provision_failures(platform, user.user_id)),
        what="an account.provision_failed per round",
    )
    assert all(f["retryable"] for f in failures)
    assert all(f"gave up after {CHAOS_MAX_ATTEMPTS} attempts" in f["reason"] for f in failures)
    assert "500" in failures[-1]["reason"]
    letters = await eventually(
        lambda: at_least(rounds, dead_letters_of(user.user_id)), what="a dead letter per round"
    )
    assert all("500" in (x.header("accord-error") or "") for x in letters)
    # Each request spent the target's whole budget, and no more, before it was dead-lettered.
    assert chaos.proxy.count(forwarded=False) == CHAOS_MAX_ATTEMPTS * rounds
    assert chaos.proxy.count("POST", containing=user.user_name) == 0

    chaos.proxy.passthrough()  # the target recovers; an operator replays the requests
    chosen = [arg for x in letters for arg in ("--event-id", x.event_id or "")]
    code, _, err = await accord_cli(platform, "dlq", "replay", "provision.requested", *chosen)
    assert code == 0, err
    assert f"replayed {len(letters)} dead letter(s)" in err

    await exactly_one_account(chaos, user)
    completed = await completed_saga(platform, user.user_id)
    assert completed["saga_id"] == failed["saga_id"]
    assert completed["steps"][0]["status"] == "done"
