"""Dead letters as an operator sees them through `accord dlq` (issue 17, item 2): one entry
per event whatever the number of groups that failed it, replays for those groups only, and
what no longer needs action left out."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from accord.events import topics
from accord.runtime.dlq_tools import read_dead_letters
from accord.stack.platform import Platform

from .conftest import Chaos, accord_cli, eventually, publish_user_created_without_user_name
from .test_provisioning_faults import OUTAGE_S, completed_saga, exactly_one_account, join

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: Every consumer group that reads user.created (the README's table of grants).
USER_CREATED_GROUPS = [
    "accord-auditor",
    "accord-authn",
    "accord-authz",
    "accord-orchestrator",
    "accord-sources",
]


async def dlq_list(platform: Platform, topic: str, *options: str) -> dict[str, dict[str, Any]]:
    """`accord dlq list --json`, by event id; every event appears once."""
    code, out, err = await accord_cli(
        platform, "dlq", "list", topic, "--json", "--limit", "100000", *options
    )
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    ids = [e["event_id"] for e in entries]
    assert len(ids) == len(set(ids)), "an event listed more than once"
    return dict(zip(ids, entries, strict=True))


async def test_an_event_every_group_rejects_is_one_entry_and_its_replay_reaches_those_groups(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    event_id, user_id = str(uuid.uuid4()), f"e-bad-{unique}"
    await publish_user_created_without_user_name(kafka_bootstrap, user_id, event_id)

    async def failed_by(count: int) -> dict[str, Any] | None:
        entry = (await dlq_list(platform, topics.USER_CREATED)).get(event_id)
        wanted = dict.fromkeys(USER_CREATED_GROUPS, count)
        return entry if entry is not None and entry["consumers"] == wanted else None

    entry = await eventually(lambda: failed_by(1), what="every group's dead letter")
    assert "user_name" in entry["reason"]

    code, _, err = await accord_cli(
        platform, "dlq", "replay", topics.USER_CREATED, "--event-id", event_id
    )

    assert code == 0, err
    assert "replayed 1 dead letter(s)" in err
    # Still malformed: each group that failed it got the one replay and failed it once more.
    await eventually(lambda: failed_by(2), what="every group's second dead letter")


async def test_the_dead_letters_of_a_saga_that_healed_itself_are_resolved_without_a_replay(
    platform: Platform,
    kafka_bootstrap: str,
    chaos: Chaos,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The round that got through after the outage is a later command of the same account:
    handling it resolves the earlier rounds' dead letters, so `dlq list` hides them and
    `dlq replay --all` leaves them out; replaying them anyway is harmless."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    await chaos.proxy.down(OUTAGE_S)
    user = await join(kafka_bootstrap, unique)
    await exactly_one_account(chaos, user)
    await completed_saga(platform, user.user_id)
    letters = [
        x
        for x in await read_dead_letters(topics.PROVISION_REQUESTED)
        if x.header("ce_subject") == user.user_id
    ]
    assert letters, "the outage never made the provisioner give up on a request"
    ids = {x.event_id for x in letters}

    async def resolved() -> bool:
        entries = await dlq_list(platform, topics.PROVISION_REQUESTED, "--include-resolved")
        return all(i in entries and not entries[i]["needs_action"] for i in ids)

    await eventually(resolved, what="the healed saga's dead letters resolved")
    assert not ids & set(await dlq_list(platform, topics.PROVISION_REQUESTED))

    # Replayed anyway: refused as superseded by the command that got through; nothing moves.
    chosen = [arg for i in sorted(ids) for arg in ("--event-id", i or "")]
    code, _, err = await accord_cli(
        platform, "dlq", "replay", topics.PROVISION_REQUESTED, "--include-resolved", *chosen
    )
    assert code == 0, err
    assert f"replayed {len(ids)} dead letter(s)" in err
    await exactly_one_account(chaos, user)
    assert (await completed_saga(platform, user.user_id))["status"] == "completed"
