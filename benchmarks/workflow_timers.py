"""Time-based triggers, measured on the whole platform (real broker, PostgreSQL): how late a
timer fires, and what firing costs the orchestrator.

``--identities`` (1,000) joiners are published with hire instants spread evenly over
``--spread`` (20) seconds, the first ``--lead`` (60) seconds after the publishing starts; the
orchestrator's workflow folder holds one workflow triggered at the hire instant (``at:
hire_date, offset: PT0S``) whose only task is a one-second wait (no target: nothing but the
engine's own work). Once every timer is scheduled and the joiners' sagas have settled, the
phase runs from just before the first timer is due until every run has started.

Lateness of a timer = its run's ``created_at`` (the engine's clock as it handled the claimed
timer, the time of its workflow.run_started event) minus the timer's ``fire_at``; both from
the orchestrator's tables. Printed: p50/p90/p99/max, the runs started per second at the
peak, and the CPU seconds of the orchestrator (and of PostgreSQL) during the phase.

The timer loop polls every ``--poll-s`` (ACCORD_TIMER_POLL_S, 1 s here) and claims up to
``loops.BATCH`` timers per transaction; on Apache Kafka (one KRaft node) unless ``--broker
tansu`` or ACCORD_BROKER=tansu.

Usage::

    uv run --frozen python benchmarks/workflow_timers.py [--identities 1000] [--spread 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from benchlib import brokers
from benchlib.resources import cpu_seconds, own_cpu_seconds
from benchlib.services import MEASURED
from benchlib.stats import summary_ms

from accord.events import Publisher, UserCreated
from accord.stack.platform import Platform, PlatformConfig

WORKFLOW_ID = "bench-hire-instant"
WORKFLOW = f"""
id: {WORKFLOW_ID}
category: custom
description: At the hire instant, a one-second pause (needs no target).
trigger: {{at: hire_date, offset: PT0S}}
tasks:
  - id: pause
    task: wait
    duration: PT1S
"""
LATENESS = """
SELECT t.identity_id, t.fire_at, r.created_at
FROM orchestrator.workflow_timers t
JOIN orchestrator.workflow_runs r ON r.trigger ->> 'timer_id' = t.timer_id
WHERE t.workflow_id = $1
"""


async def until(probe: Any, what: str, limit_s: float) -> Any:
    """Poll until probe() answers something true; that answer."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.2)
    raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}")


def postmaster_pid(platform: Platform) -> int | None:
    """The embedded PostgreSQL's server process (its backends are its children)."""
    if platform.postgres is None:
        return None
    pid_file = Path(platform.postgres.data_dir) / "postmaster.pid"
    try:
        return int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


async def measure(
    platform: Platform, identities: int, spread_s: float, lead_s: float, poll_s: float
) -> dict[str, Any]:
    conn = await asyncpg.connect(platform.database_url)
    try:
        stamp = time.time_ns()
        first = datetime.now(UTC) + timedelta(seconds=lead_s)
        step = spread_s / max(1, identities - 1)
        users = [
            UserCreated(
                user_id=f"bt-{stamp}-{i}",
                user_name=f"bench.timer.{stamp}.{i}",
                hire_date=(first + timedelta(seconds=step * i)).isoformat(),
            )
            for i in range(identities)
        ]
        started = time.monotonic()
        async with Publisher(
            source="urn:bench:hr", bootstrap_servers=platform.bootstrap_servers
        ) as hr:
            for user in users:
                await hr.publish(user, sequence=1)
        print(f"published {identities} joiners in {time.monotonic() - started:.1f} s", flush=True)

        async def scheduled() -> int | None:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM orchestrator.workflow_timers WHERE workflow_id = $1",
                WORKFLOW_ID,
            )
            return count if count >= identities else None

        await until(scheduled, "every timer scheduled", lead_s)
        print(f"{identities} timers scheduled after {time.monotonic() - started:.1f} s", flush=True)

        async def settled() -> bool:
            busy: int = await conn.fetchval(
                "SELECT count(*) FROM orchestrator.sagas WHERE status IN ('queued', 'running')"
            )
            return busy == 0

        await until(settled, "the joiners' sagas to settle", lead_s)
        ahead = (first - datetime.now(UTC)).total_seconds()
        print(f"joiner sagas settled; first timer due in {ahead:.1f} s", flush=True)
        if ahead < 2:
            print("WARNING: the first timers fell due before the load settled (raise --lead)")
        await asyncio.sleep(max(0.0, ahead - 1.0))

        orchestrator = platform.services["orchestrator"].pid or 0
        postgres = postmaster_pid(platform)
        cpu_before = own_cpu_seconds(orchestrator)
        pg_before = cpu_seconds(postgres) if postgres else 0.0
        phase_start = time.monotonic()

        async def all_started() -> int | None:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM orchestrator.workflow_runs WHERE workflow_id = $1",
                WORKFLOW_ID,
            )
            return count if count >= identities else None

        await until(all_started, "every run started", spread_s + 120)
        phase_s = time.monotonic() - phase_start
        cpu = own_cpu_seconds(orchestrator) - cpu_before
        pg_cpu = (cpu_seconds(postgres) - pg_before) if postgres else None
        rows = await conn.fetch(LATENESS, WORKFLOW_ID)
        states = Counter(
            r["state"]
            for r in await conn.fetch(
                "SELECT state FROM orchestrator.workflow_timers WHERE workflow_id = $1",
                WORKFLOW_ID,
            )
        )
    finally:
        await conn.close()
    late = [(r["created_at"] - r["fire_at"]).total_seconds() for r in rows]
    early = sum(1 for s in late if s < 0)
    per_second = Counter(int(r["created_at"].timestamp()) for r in rows)
    polls = batches(sorted(r["created_at"] for r in rows), poll_s / 2)
    runs_per_identity = Counter(r["identity_id"] for r in rows)
    return {
        "identities": identities,
        "spread_s": spread_s,
        "runs": len(rows),
        "identities with two runs": sum(1 for n in runs_per_identity.values() if n > 1),
        "timer states": dict(states),
        "fired early (negative lateness)": early,
        "lateness": summary_ms(late),
        "peak runs started in one second": max(per_second.values(), default=0),
        "polls that fired timers": len(polls),
        "timers per poll (mean, max)": [
            round(len(rows) / max(1, len(polls)), 1),
            max((n for n, _ in polls), default=0),
        ],
        "handling ms per timer (within a poll)": round(
            1000 * sum(s for _, s in polls) / max(1, sum(n - 1 for n, _ in polls)), 1
        ),
        "seconds between polls (median start to start)": median_gap(
            sorted(rows, key=_at), poll_s / 2
        ),
        "phase_s": round(phase_s, 1),
        "orchestrator cpu_s": round(cpu, 2),
        "orchestrator cpu % of one core": round(100 * cpu / phase_s, 1),
        "postgresql cpu_s": None if pg_cpu is None else round(pg_cpu, 2),
    }


def _at(row: Any) -> datetime:
    created: datetime = row["created_at"]
    return created


def batches(starts: list[datetime], gap_s: float) -> list[tuple[int, float]]:
    """The runs grouped by the poll that started them (a pause of more than `gap_s`, half
    the poll interval, between two runs is a new poll): (runs, seconds first to last) of each."""
    found: list[tuple[int, float]] = []
    first = previous = None
    count = 0
    for at in starts:
        if previous is not None and (at - previous).total_seconds() > gap_s:
            assert first is not None
            found.append((count, (previous - first).total_seconds()))
            first, count = None, 0
        first = first or at
        previous = at
        count += 1
    if first is not None and previous is not None:
        found.append((count, (previous - first).total_seconds()))
    return found


def median_gap(rows: list[Any], gap_s: float) -> float | None:
    """The median time from one poll's first run to the next poll's first run."""
    starts: list[datetime] = []
    previous = None
    for row in rows:
        at = _at(row)
        if previous is None or (at - previous).total_seconds() > gap_s:
            starts.append(at)
        previous = at
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(starts))
    return round(gaps[len(gaps) // 2], 2) if gaps else None


async def main(identities: int, spread_s: float, lead_s: float, poll_s: float, broker: str) -> None:
    with tempfile.TemporaryDirectory(prefix="accord-bench-timers-") as home:
        folder = Path(home) / "workflows"
        folder.mkdir()
        (folder / f"{WORKFLOW_ID}.yaml").write_text(WORKFLOW)
        env = {
            "ACCORD_LOG_LEVEL": "WARNING",
            "ACCORD_WORKFLOWS_DIR": str(folder),
            "ACCORD_TIMER_POLL_S": str(poll_s),
        }
        config = PlatformConfig.ephemeral(
            Path(home), broker=broker, extra_env=env, services=MEASURED
        )
        platform = Platform(config)
        started = time.monotonic()
        await platform.start()
        print(f"platform ready on {broker} in {time.monotonic() - started:.1f} s", flush=True)
        try:
            result = await measure(platform, identities, spread_s, lead_s, poll_s)
        finally:
            await platform.stop()
    result = {"broker": broker, "ACCORD_TIMER_POLL_S": poll_s, **result}
    print(json.dumps(result, indent=2))
    row = result["lateness"]
    print(
        f"\n{'timer lateness':<24} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    print(
        f"{'run created - fire_at':<24} {row['count']:>5} {row['p50']:>8} {row['p90']:>8}"
        f" {row['p99']:>8} {row['max']:>8}"
    )
    print(
        f"orchestrator CPU {result['orchestrator cpu_s']} s over {result['phase_s']} s"
        f" ({result['orchestrator cpu % of one core']} % of a core);"
        f" PostgreSQL {result['postgresql cpu_s']} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--broker", choices=("kafka", "tansu"), help="default: ACCORD_BROKER, else kafka"
    )
    parser.add_argument("--identities", type=int, default=1000, help="timers (1000)")
    parser.add_argument("--spread", type=float, default=20.0, help="seconds they span (20)")
    parser.add_argument(
        "--lead", type=float, default=60.0, help="seconds from publishing to the first (60)"
    )
    parser.add_argument("--poll-s", type=float, default=1.0, help="ACCORD_TIMER_POLL_S (1)")
    arguments = parser.parse_args()
    kind = brokers.prepare(arguments.broker).name
    asyncio.run(
        main(arguments.identities, arguments.spread, arguments.lead, arguments.poll_s, kind)
    )
