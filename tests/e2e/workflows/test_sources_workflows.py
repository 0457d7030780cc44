"""An HR export drives the lifecycle workflows: the contractor's end date comes in the
second export (a partial user.updated naming `leave_date`), and the contractor-end-date
workflow disables the account at that time and deletes it after its retention.

The same platform as test_lifecycle_workflows.py (the workflow engine on, the shipped
examples with seconds for days); the export is run by `accord sources run` beside it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ..sources_kit import run_id_of, sources_cli, sources_yaml
from .conftest import Parts
from .test_lifecycle_workflows import LATE_S, STAFF, account, at, audited, gone, run_in, task

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

COLUMNS = ("number", "first", "last", "type", "ends")


def export(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


async def test_an_end_date_from_the_hr_export_runs_the_contractor_end_date_workflow(
    parts: Parts, tmp_path: Path, unique: str
) -> None:
    platform = parts.platform
    name, csv_file, config = f"contractors-{unique}", tmp_path / "c.csv", tmp_path / "s.yaml"
    sources_yaml(
        config,
        {
            "name": name,
            "kind": "csv",
            "csv": {"path": str(csv_file)},
            "key": "number",
            "mappings": {
                "user_id": f'"{name}-" + row.number',
                "user_name": 'lower(row.first) + "." + lower(row.last)',
                "given_name": "first",
                "family_name": "last",
                "employee_type": "type",
                "department": f'"{STAFF}"',
                "time_zone": '"Europe/Paris"',
                "leave_date": "ends",
            },
        },
    )
    row = {"number": "7", "first": "Ada", "last": f"C{unique}", "type": "contractor", "ends": ""}
    export(csv_file, [row])
    first = await sources_cli(platform, "run", name, "--file", str(config))
    assert "1 created" in first
    user_id, user_name = f"{name}-7", f"ada.c{unique}"
    await account(platform, user_name, active=True)  # the joiner's

    leave = at(3)
    export(csv_file, [{**row, "ends": leave.isoformat()}])
    second = await sources_cli(platform, "run", name, "--file", str(config))
    assert "0 created, 1 updated" in second
    assert run_id_of(second)

    _, disabled = await account(platform, user_name, active=False)
    assert disabled >= leave.timestamp() - 0.5, "disabled before the end date"
    assert disabled <= leave.timestamp() + LATE_S, "disabled late"
    await gone(platform, user_name)
    run = await run_in(platform, user_id, "contractor-end-date", "completed")
    assert task(run, "disable_accounts")["status"] == "completed"
    await audited(platform, user_id, "user.updated", "workflow.run_started")
