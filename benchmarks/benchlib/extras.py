"""The side measurements of the run: audit log store and verify, authz decisions, the floor.

They reuse the standalone benchmarks (benchmarks/audit_log.py, authz_decisions.py) and
benchmarks/floor.py, imported as modules: e2e.py runs from benchmarks/, which is on
sys.path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

Say = Callable[[str], None]


def _database_dsn(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def audit_store(
    platform_dsn: str, run: str, count: int, singles: int, say: Say
) -> dict[str, Any]:
    """benchmarks/audit_log.py's figures, in a database of their own on the platform's
    PostgreSQL (the live audit chain stays untouched), then `accord audit verify` on it."""
    import audit_log

    database = f"bench_audit_{run}"
    admin = await asyncpg.connect(platform_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    dsn = _database_dsn(platform_dsn, database)
    figures: dict[str, Any] = await audit_log.measure(
        dsn, count, singles=singles, say=lambda line: say(f"  audit log: {line}")
    )
    figures["cli_verify"] = await verify_cli(dsn)
    cli = figures["cli_verify"]
    if "seconds_per_100k" in cli:
        say(
            f"  audit log: `accord audit verify` {cli['records']:,} records, "
            f"{cli['wall_seconds']:.2f} s wall (process start included) = "
            f"{cli['seconds_per_100k']:.2f} s per 100,000 (its own report)"
        )
    return figures


async def verify_cli(dsn: str) -> dict[str, Any]:
    """Run `accord audit verify --json` on DATABASE_URL=dsn as an operator would."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.events.cli",
        "audit",
        "verify",
        "--json",
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        return {"error": (err or out).decode(errors="replace")[-500:], "wall_seconds": wall}
    report = json.loads(out)
    records = report["records_checked"]
    return {
        "ok": report["ok"],
        "records": records,
        "seconds": report["seconds"],
        "wall_seconds": round(wall, 3),
        "seconds_per_100k": round(report["seconds"] / records * 100_000, 3) if records else None,
    }


def authz_in_process(seconds: float, say: Say) -> dict[str, Any]:
    """benchmarks/authz_decisions.py modes (a) to (c) in this process."""
    import authz_decisions

    work = authz_decisions.workload()
    authz_decisions.check(work)
    results = authz_decisions.in_process(work, seconds)
    modes = {}
    for result in results:
        say(f"  authz in process: {result.name.strip():<38} {result.per_second:10,.0f} decisions/s")
        modes[result.name.strip()] = {
            "decisions": result.decisions,
            "seconds": round(result.seconds, 3),
            "per_second": round(result.per_second),
            "micros_per_decision": round(result.micros, 1),
        }
    single = results[0].per_second
    batch = results[2].per_second
    return {"single_per_s": round(single), "batch_per_s": round(batch), "modes": modes}


async def authz_over_http(
    url: str, token: str, principal: str, seconds: float, concurrency: int, say: Say
) -> dict[str, Any]:
    """Mode (d): the platform's authz over HTTP, single questions and batches of 100."""
    import authz_decisions

    work = authz_decisions.workload()
    try:
        measured = await authz_decisions.over_http(
            url, token, work, principal=principal, seconds=seconds, concurrency=concurrency
        )
    except SystemExit as stop:  # over_http's way of reporting an HTTP error
        return {"error": str(stop)}
    figures: dict[str, Any] = {"concurrency": concurrency, "principal": principal}
    for path, requests, decisions, elapsed in measured:
        name = "batch" if path.endswith("/batch") else "single"
        figures[f"{name}_per_s"] = round(decisions / elapsed)
        figures[f"{name}_requests_per_s"] = round(requests / elapsed)
        say(f"  authz over HTTP: POST {path:<22} {decisions / elapsed:10,.0f} decisions/s")
    return figures


def floor_function() -> tuple[Callable[..., Any] | None, str | None]:
    """benchmarks/floor.py's run_floor, or why it cannot be used (yet)."""
    try:
        import floor
    except ModuleNotFoundError as missing:
        if missing.name == "floor":
            return None, "benchmarks/floor.py is not there: the floor was not measured"
        raise
    run_floor = getattr(floor, "run_floor", None)
    if run_floor is None:
        return None, "benchmarks/floor.py has no run_floor: the floor was not measured"
    return run_floor, None


async def floor(
    run_floor: Callable[..., Any],
    *,
    bootstrap_servers: str,
    dsn: str,
    scim_base_url: str,
    scim_token: str,
    count: int,
    http_client: str,
    broker: str,
    say: Say,
) -> dict[str, Any]:
    """One floor measurement with one HTTP client on the run's broker (its kind: "kafka" or
    "tansu"); its FloorResult as a dict."""
    try:
        result = await run_floor(
            bootstrap_servers=bootstrap_servers,
            dsn=dsn,
            scim_base_url=scim_base_url,
            scim_token=scim_token,
            count=count,
            http_client=http_client,
            progress=lambda line: say(f"  floor with {http_client}: {line}"),
            broker=broker,
        )
    except Exception as error:  # a broken floor must not lose the rest of the run
        say(f"  floor with {http_client}: FAILED: {error!r}")
        return {"http_client": http_client, "error": repr(error)}
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        figures = dataclasses.asdict(result)
    else:
        fields = ("events", "seconds", "per_second", "http_client", "concurrency", "cpu_seconds")
        figures = {name: getattr(result, name, None) for name in fields}
    say(
        f"  floor with {http_client}: {figures.get('per_second', float('nan')):,.0f} events/s"
        f" ({figures.get('events')} events in {figures.get('seconds', 0):.1f} s)"
    )
    return figures
