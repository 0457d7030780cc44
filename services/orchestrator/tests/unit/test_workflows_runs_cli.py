"""`accord workflows runs cancel | retry`, `accord workflows run` against the runs API (the real
routes on fakes, through an ASGI transport), and `accord workflows simulate` reachable from
the accord command. (`runs list | show` read PostgreSQL: tests/integration.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.events.cli import main
from accord.orchestrator.workflows import runs_api, runs_cli
from accord.orchestrator.workflows.cli import EXAMPLES
from accord.orchestrator.workflows.run_model import RunStatus

from .test_workflows_runs_api import (
    AUDITOR,
    OPERATOR,
    FakeOperations,
    build_app,
    examples_holder,
    filled_runs,
)


def accord(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["workflows", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def operations(monkeypatch: pytest.MonkeyPatch) -> FakeOperations:
    """The orchestrator's API on fakes, where the CLI's calls land; an operator's token."""
    runs = asyncio.run(filled_runs())
    engine = FakeOperations(runs)
    app = build_app(runs, engine, examples_holder(), [])
    monkeypatch.setattr(runs_cli, "transport", httpx.ASGITransport(app=app))
    monkeypatch.setenv("ACCORD_ORCHESTRATOR_URL", "http://orchestrator:8080/")
    monkeypatch.setenv("ACCORD_API_TOKEN", OPERATOR)
    return engine


def test_cancel_asks_the_engine_with_the_reason(
    capsys: pytest.CaptureFixture[str], operations: FakeOperations
) -> None:
    code, out, err = accord(capsys, "runs", "cancel", "run-2", "--reason", "hired elsewhere")
    assert (code, err) == (0, "")
    assert out == "workflow run run-2 is now cancelled\n"
    assert operations.calls == [("cancel", "run-2", "hired elsewhere")]
    stored = asyncio.run(operations.runs.get("run-2"))
    assert stored is not None
    assert stored.status is RunStatus.CANCELLED


def test_cancel_of_a_finished_run_fails_with_the_apis_reason(
    capsys: pytest.CaptureFixture[str], operations: FakeOperations
) -> None:
    code, out, err = accord(capsys, "runs", "cancel", "run-1", "--reason", "x")
    assert (code, out) == (1, "")
    assert err == "accord: error: the run has ended and cannot be cancelled (409)\n"


def test_retry_a_failed_run_and_refuse_a_running_one(
    capsys: pytest.CaptureFixture[str], operations: FakeOperations
) -> None:
    code, out, err = accord(capsys, "runs", "retry", "run-5")
    assert (code, out, err) == (0, "workflow run run-5 is now running\n", "")
    code, out, err = accord(capsys, "runs", "retry", "run-4")
    assert (code, out) == (1, "")
    assert err == f"accord: error: {runs_api.NOT_RETRYABLE} (409)\n"
    code, _, err = accord(capsys, "runs", "retry", "run-404")
    assert (code, err) == (1, "accord: error: no such workflow run (404)\n")


def test_run_starts_a_workflow_on_demand_for_each_identity(
    capsys: pytest.CaptureFixture[str], operations: FakeOperations
) -> None:
    code, out, err = accord(capsys, "run", "leaver", "--identity", "u-ada", "--identity", "u-bob")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["od-u-ada", "od-u-bob"]
    assert operations.calls == [("start", "leaver", ("u-ada", "u-bob"), "otto")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("run", "nope", "--identity", "u-ada"), "no such workflow, or it is disabled (404)"),
        (
            ("run", "leaver", "--identity", "ghost"),
            "an identity is not in the registry; nothing started (422)",
        ),
    ],
)
def test_run_refusals_fail_in_one_line(
    capsys: pytest.CaptureFixture[str],
    operations: FakeOperations,
    argv: tuple[str, ...],
    message: str,
) -> None:
    code, out, err = accord(capsys, *argv)
    assert (code, out, err) == (1, "", f"accord: error: {message}\n")


def test_a_token_without_sagas_operate_is_refused(
    capsys: pytest.CaptureFixture[str],
    operations: FakeOperations,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("ACCORD_API_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(AUDITOR + "\n")
    code, _, err = accord(capsys, "runs", "retry", "run-5", "--token-file", str(token_file))
    assert code == 1
    assert err == "accord: error: this needs the sagas:operate permission (403)\n"
    assert operations.calls == []


@pytest.mark.parametrize("missing", ["ACCORD_ORCHESTRATOR_URL", "ACCORD_API_TOKEN"])
def test_no_url_or_no_token_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
    operations: FakeOperations,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
) -> None:
    monkeypatch.delenv(missing)
    code, out, err = accord(capsys, "runs", "retry", "run-5")
    assert (code, out) == (2, "")
    assert missing in err
    assert operations.calls == []


def test_an_unreachable_orchestrator_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_ORCHESTRATOR_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ACCORD_API_TOKEN", OPERATOR)
    code, out, err = accord(capsys, "runs", "retry", "run-5")
    assert (code, out) == (1, "")
    assert err.startswith("accord: error: orchestrator at http://127.0.0.1:9: ")


# --- simulate, wired into accord workflows -----------------------------------------------------


def test_simulate_is_reachable_from_accord_workflows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["workflows", "simulate", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: accord workflows simulate")
    assert "--events FILE" in out


def _record(n: int, when: str, subject: str, **profile: Any) -> dict[str, Any]:
    payload = {"user_id": subject, "user_name": subject, "active": True, "attributes": {}}
    return {
        "record_id": n,
        "occurred_at": when,
        "recorded_at": when,
        "event_type": "user.created",
        "outcome": "info",
        "actor": "hr",
        "subject": subject,
        "target": None,
        "correlation_id": f"c-{n}",
        "trace_id": None,
        "source_topic": "user.created",
        "source_event_id": f"e-{n}",
        "hash": "x",
        "payload": payload | profile,
    }


def test_simulate_replays_an_export_through_the_matcher(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shipped pre-hire workflow (a week before hire_date, employees only) as the draft,
    nothing as the active set: the employee's timer fires in the window, the contractor's
    does not (out of scope), so the draft alone runs pre-hire once."""
    draft, active = tmp_path / "draft", tmp_path / "active"
    draft.mkdir()
    active.mkdir()
    (draft / "pre-hire.yaml").write_text((EXAMPLES / "pre-hire.yaml").read_text())
    (active / "leaver.yaml").write_text((EXAMPLES / "leaver.yaml").read_text())
    events = tmp_path / "audit.ndjson"
    history = [
        _record(
            1, "2026-11-02T09:00:00+00:00", "ada", employee_type="employee", hire_date="2026-11-20"
        ),
        _record(
            2, "2026-11-03T09:00:00+00:00", "cy", employee_type="contractor", hire_date="2026-11-20"
        ),
    ]
    events.write_text("".join(json.dumps(r) + "\n" for r in history))
    monkeypatch.setenv("ACCORD_BIRTHRIGHT_TARGETS", "ad")
    monkeypatch.delenv("ACCORD_BIRTHRIGHT_FILE", raising=False)
    code, out, err = accord(
        capsys,
        "simulate",
        "--since",
        "2026-11-01T00:00:00Z",
        "--until",
        "2026-12-01T00:00:00Z",
        "--dir",
        str(draft),
        "--active-dir",
        str(active),
        "--events",
        str(events),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["events"] == 2
    assert report["runs"]["draft"] == {"pre-hire": 1, "accord-joiner": 2}
    assert report["runs"]["active"].get("pre-hire", 0) == 0
    assert "events/s" in err
