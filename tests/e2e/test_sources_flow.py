"""Authoritative sources on the whole platform: an HR export becomes accounts in the target.

A CSV export of N people (ACCORD_E2E_SOURCE_PEOPLE, 60 by default; the issue's 10,000 is a
manual run of this test), run with `accord sources run` as an operator would: the sources
service's relay publishes, the orchestrator's joiners create the accounts. A second export
with its joiners, movers, leavers, a deactivation, a changed hire date and a rename publishes
exactly those changes (the audit log shows every event of the run by its correlation id) and
the target follows. A truncated export is held at the safety limit and rejected. A person who
already had an identity from Kafka is linked, not created twice.

The demo target's birthright: everyone but Contractors gets an account there.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from accord.events import Publisher, UserCreated
from accord.stack.platform import Platform

from .conftest import audit_events, eventually, target_account
from .sources_kit import (
    accounts_become,
    csv_source,
    expected_accounts,
    person,
    run_events,
    run_id_of,
    sources_cli,
    sources_yaml,
    write_export,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PEOPLE = int(os.environ.get("ACCORD_E2E_SOURCE_PEOPLE", "60"))
#: How long the platform may take for a whole export (a 10,000-person run takes minutes).
PATIENCE = max(60.0, PEOPLE / 20)


@pytest.mark.timeout(300 + PEOPLE // 10)
async def test_an_hr_export_then_its_changes_become_exactly_those_accounts(
    platform: Platform, kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    tag, name = unique, f"hr-{unique}"
    export, config = tmp_path / "hr.csv", tmp_path / "sources.yaml"
    sources_yaml(config, csv_source(name, export))
    # Someone HR lists already has an identity, published over Kafka by another system.
    known = person(tag, 1)
    async with Publisher(
        source="urn:test:badge-system", bootstrap_servers=kafka_bootstrap
    ) as other:
        await other.publish(
            UserCreated(user_id=f"badge-{tag}", user_name=f"founder.t{tag}",
                        employee_number=known["id"], title="Founder"),
            sequence=1,
        )  # fmt: skip
        await target_account(platform, f"founder.t{tag}", title="Founder")
    rows = [person(tag, n) for n in range(1, PEOPLE + 1)]
    write_export(export, rows)

    async def projected() -> bool:
        # the sources service's view of the identities has the badge system's identity
        conn = await asyncpg.connect(platform.database_url)
        try:
            found = await conn.fetchval(
                "SELECT employee_number FROM sources.identities WHERE user_id = $1", f"badge-{tag}"
            )
        finally:
            await conn.close()
        return found == known["id"]

    await eventually(projected, what="the sources service to see the existing identity")
    dry = await sources_cli(platform, "run", name, "--file", str(config), "--dry-run")
    assert f"user.updated       badge-{tag}" in dry  # linked, as the dry run says
    first = await sources_cli(platform, "run", name, "--file", str(config))
    assert (
        f"published {PEOPLE} events: {PEOPLE} rows read; {PEOPLE - 1} created, 1 updated, 1 linked"
        in first
    )
    events = await run_events(platform, run_id_of(first), PEOPLE, PATIENCE)
    assert Counter(e["event_type"] for e in events) == {
        "user.created": PEOPLE - 1,
        "user.updated": 1,
    }
    assert {e["subject"] for e in events if e["event_type"] == "user.updated"} == {f"badge-{tag}"}
    accounts = await accounts_become(platform, tag, expected_accounts(tag, rows), PATIENCE)
    assert f"founder.t{tag}" not in accounts  # linked and renamed, not a second account

    # The second export changes 3 % of the people (300 of 10,000; 15 of 100): joiners,
    # movers (a new title; two to Contractors, who get no demo account), leavers, one
    # deactivation, one changed hire date, one rename.
    each = max(5, PEOPLE // 100)
    movers = list(range(3, 3 + each - 2))
    to_contractors = [movers[-1] + 1, movers[-1] + 2]
    deactivated, new_hire_date, renamed = (
        to_contractors[-1] + 1,
        to_contractors[-1] + 2,
        to_contractors[-1] + 3,
    )
    leavers = set(range(renamed + 5, renamed + 5 + each - 3))
    changes = {n: {"job": f"Senior {n}"} for n in movers}
    changes |= {n: {"dept": "Contractors"} for n in to_contractors}
    changes |= {deactivated: {"status": "I"}, new_hire_date: {"hired": "2025-02-03"}}
    changes |= {renamed: {"last": f"Wed{tag}"}}
    second = [
        person(tag, n, **changes.get(n, {})) for n in range(1, PEOPLE + 1) if n not in leavers
    ]
    second += [person(tag, n) for n in range(PEOPLE + 1, PEOPLE + 1 + each)]
    write_export(export, second)
    out = await sources_cli(platform, "run", name, "--file", str(config))
    updated, deleted = each + 2, each - 3
    counts = f"{each} created, {updated} updated, 0 linked, 1 deactivated, 0 reactivated"
    assert f"{counts}, {deleted} deleted" in out
    events = await run_events(platform, run_id_of(out), 3 * each, PATIENCE)
    assert len(events) == 3 * each
    assert Counter(e["event_type"] for e in events) == {
        "user.created": each,
        "user.updated": updated,
        "user.deactivated": 1,
        "user.deleted": deleted,
    }
    changed = {e["subject"]: e["payload"] for e in events if e["event_type"] == "user.updated"}
    assert changed[f"{name}-{tag}-{new_hire_date:05d}"]["changed"] == ["hire_date"]
    assert changed[f"{name}-{tag}-{renamed:05d}"]["changed"] == ["family_name", "user_name"]
    final = expected_accounts(tag, second)
    # the renamed person keeps one account, under the new name (not `t{tag}` any more)
    new_name = f"p{renamed}.wed{tag}".lower()
    assert new_name in final
    listed = {k: v for k, v in final.items() if k != new_name}
    await accounts_become(platform, tag, listed, PATIENCE)
    await target_account(platform, new_name, active=True)

    # A truncated export: held at the safety limit, nothing published, rejected.
    write_export(export, second[: len(second) // 2])
    out = await sources_cli(platform, "run", name, "--file", str(config))
    assert "HELD, nothing published" in out
    held = run_id_of(out)
    out = await sources_cli(platform, "reject", held, "--as", "ops-lead", "--reason", "truncated")
    assert "nothing published" in out
    records = await audit_events(platform, correlation_id=held)
    assert [r["event_type"] for r in records] == ["source.run_completed"] * 2
    write_export(export, second)  # the next export is whole: nothing to do
    out = await sources_cli(platform, "run", name, "--file", str(config))
    assert "published 0 events" in out
