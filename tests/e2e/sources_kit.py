"""What the sources end-to-end tests share: people as rows, a CSV export, the source that
reads it, `accord sources` run beside the platform, and the accounts in the demo target."""

from __future__ import annotations

import asyncio
import csv
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from accord.stack.platform import Platform

from .conftest import audit_events, eventually, scim_client

COLUMNS = ("id", "first", "last", "mail", "dept", "job", "hired", "status")


def person(tag: str, n: int, **changes: str) -> dict[str, str]:
    row = {
        "id": f"{tag}-{n:05d}",
        "first": f"P{n}",
        "last": f"T{tag}",
        "mail": f"p{n}.{tag}@example.org",
        "dept": ("Engineering", "Sales", "Finance")[n % 3],
        "job": f"Job {n}",
        "hired": "2025-01-06",
        "status": "A",
    }
    return {**row, **changes}


def write_export(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


#: Profile fields from the columns of `person` (every kind of source names them so).
MAPPINGS = {
    "user_name": 'lower(row.first) + "." + lower(row.last)',
    "given_name": "first",
    "family_name": "last",
    "email": "mail",
    "employee_number": "id",
    "department": "dept",
    "title": "job",
}


def csv_source(name: str, export: Path) -> dict[str, Any]:
    """A CSV source of COLUMNS."""
    return {
        "name": name,
        "kind": "csv",
        "csv": {"path": str(export)},
        "key": "id",
        "mappings": {"user_id": f'"{name}-" + row.id', **MAPPINGS, "hire_date": "hired"},
        "status": {"column": "status", "active_values": ["A"]},
        "correlation": [{"by": "employee_number"}],
    }


def sources_yaml(path: Path, *sources: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"sources": list(sources)}), encoding="utf-8")


async def sources_cli(platform: Platform, *args: str, env: dict[str, str] | None = None) -> str:
    """`accord sources ARGS` as an operator runs it beside the platform; its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.events.cli",
        "sources",
        *args,
        env={**platform.service_env(), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


def run_id_of(output: str) -> str:
    found = re.search(r"^run (\S+) ", output, re.MULTILINE)
    assert found is not None, output
    return found.group(1)


async def accounts_of(platform: Platform, tag: str) -> dict[str, dict[str, Any]]:
    """Every account of this test's people in the demo target, by user name."""
    found: dict[str, dict[str, Any]] = {}
    async with scim_client(platform.scim, timeout=30) as client:
        start = 1
        while True:
            response = await client.get(
                "/Users",
                params={"filter": f'userName co "t{tag}"', "startIndex": start, "count": 500},
            )
            response.raise_for_status()
            page = response.json()
            resources = page.get("Resources", [])
            found.update({user["userName"]: user for user in resources})
            start += len(resources)
            if not resources or start > page["totalResults"]:
                return found


async def accounts_become(
    platform: Platform, tag: str, expected: dict[str, tuple[bool, str]], patience: float = 60
) -> dict[str, dict[str, Any]]:
    """Wait until the target holds exactly `expected` (user name -> active, title)."""

    async def matches() -> dict[str, dict[str, Any]] | None:
        accounts = await accounts_of(platform, tag)
        shown = {name: (a.get("active"), a.get("title")) for name, a in accounts.items()}
        return accounts if shown == expected else None

    return await eventually(matches, timeout=patience, what=f"{len(expected)} accounts")


async def run_events(
    platform: Platform, run_id: str, count: int, patience: float = 60
) -> list[dict[str, Any]]:
    """The identity events of one run, as the auditor recorded them from Kafka."""

    async def recorded() -> list[dict[str, Any]] | None:
        records = await audit_events(platform, correlation_id=run_id)
        identity = [r for r in records if r["event_type"].startswith("user.")]
        return identity if len(identity) >= count else None

    return await eventually(recorded, timeout=patience, what=f"{count} events of run {run_id}")


def expected_accounts(tag: str, rows: list[dict[str, str]]) -> dict[str, tuple[bool, str]]:
    return {
        f"{row['first'].lower()}.{row['last'].lower()}": (row["status"] == "A", row["job"])
        for row in rows
        if row["dept"] != "Contractors"
    }
