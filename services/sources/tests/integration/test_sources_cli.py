"""`accord sources` on a real PostgreSQL: a dry run, a run, the status and the runs, a held
run decided by an operator, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from accord.stack.testing import run_accord as accord

from .hr_export import person, source, write

pytestmark = pytest.mark.integration


@pytest.fixture
def sources_file(tmp_path: Path, fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sources.yaml with one CSV source `hr`; DATABASE_URL is a fresh database."""
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    export = tmp_path / "hr.csv"
    write(export, [person(n) for n in range(1, 21)])
    described = source(export).model_dump(mode="json", exclude_defaults=True)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [described]}), encoding="utf-8")
    return path


@pytest.mark.asyncio(loop_scope="session")
async def test_a_dry_run_then_a_run_then_the_status(
    sources_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = str(sources_file)
    code, out, err = await accord(capsys, "sources", "run", "hr", "--file", file, "--dry-run")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert sum(line.startswith("user.created") for line in lines) == 20
    assert lines[-1].startswith("dry run of hr: 20 rows read; 20 created, 0 updated")
    assert lines[-1].endswith("would publish")

    code, out, err = await accord(capsys, "sources", "run", "hr", "--file", file, "--progress")
    assert code == 0
    assert "reading: 20 rows" in err
    assert "published 20 events: 20 rows read; 20 created" in out

    code, out, _ = await accord(capsys, "sources", "status", "--file", file, "--json")
    (status,) = [json.loads(line) for line in out.splitlines()]
    assert (status["source"], status["active"], status["runs"]) == ("hr", 20, "on demand")
    assert status["last_run"]["status"] == "published"
    assert status["last_run"]["counts"]["created"] == 20


@pytest.mark.asyncio(loop_scope="session")
async def test_a_held_run_is_shown_refused_and_approved(
    sources_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = str(sources_file)
    assert (await accord(capsys, "sources", "run", "hr", "--file", file))[0] == 0
    write(tmp_path / "hr.csv", [person(n) for n in range(1, 11)])  # half the export
    code, out, _ = await accord(capsys, "sources", "run", "hr", "--file", file)
    assert code == 0
    assert "HELD, nothing published: 10 deletions are 50.0 % of 20 active" in out
    code, out, _ = await accord(capsys, "sources", "runs", "--source", "hr", "--json")
    newest = json.loads(out.splitlines()[0])
    assert (newest["status"], newest["counts"]["deleted"]) == ("held", 10)
    run_id = newest["run_id"]

    code, _, err = await accord(capsys, "sources", "run", "hr", "--file", file)
    assert code == 1
    assert err == (
        f"accord: error: source 'hr' waits for a decision on held run {run_id}:"
        f" accord sources approve|reject {run_id}\n"
    )
    code, out, _ = await accord(capsys, "sources", "approve", run_id, "--as", "ops-lead")
    assert (code, out) == (0, f"run {run_id} approved: 10 events published for hr\n")
    code, out, _ = await accord(capsys, "sources", "show", run_id)
    shown = json.loads(out)
    assert (shown["status"], shown["decided_by"]) == ("approved", "ops-lead")
    code, _, err = await accord(
        capsys, "sources", "reject", run_id, "--as", "x", "--reason", "late"
    )
    assert (code, err) == (1, f"accord: error: run {run_id} is approved, not held\n")


@pytest.mark.asyncio(loop_scope="session")
async def test_mistakes_are_one_line_each(
    sources_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = str(sources_file)
    code, _, err = await accord(capsys, "sources", "run", "payroll", "--file", file)
    assert (code, err) == (2, "accord: error: no source 'payroll' (configured: hr)\n")
    missing = tmp_path / "nope.yaml"
    code, _, err = await accord(capsys, "sources", "status", "--file", str(missing))
    assert code == 2
    assert err.startswith(f"accord: error: cannot read {missing}: No such file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: hr\n    kind: csv\n", encoding="utf-8")
    code, _, err = await accord(capsys, "sources", "status", "--file", str(bad))
    assert code == 2
    assert err.count("\n") == 1
    assert "hr" in err
    (tmp_path / "hr.csv").write_text("id\nE1\n", encoding="utf-8")
    code, _, err = await accord(capsys, "sources", "run", "hr", "--file", file)
    assert code == 1
    assert "no column" in err
    assert "recorded as failed" in err
    assert err.count("\n") == 1
    code, _, err = await accord(capsys, "sources", "show", "no-such-run")
    assert (code, err) == (1, "accord: error: no run no-such-run\n")
