"""`accord workflows validate | test | plan`, driven through the accord command's main."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from accord.events.cli import main
from accord.orchestrator.workflows.cli import EXAMPLES

SHIPPED_CASES = sorted(str(path) for path in (EXAMPLES / "tests").glob("*.cases.yaml"))
ADA = {
    "user_id": "u-ada",
    "user_name": "ada",
    "employee_type": "employee",
    "hire_date": "2027-03-01",
    "time_zone": "Europe/Paris",
    "department": "Sales",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["workflows", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACCORD_WORKFLOWS_DIR", "ACCORD_TARGETS_FILE", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "workflows"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("tests"))
    return copy


# --- validate -------------------------------------------------------------------------------


def test_validate_lists_the_shipped_workflows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    shipped = [
        "accord-deactivation",
        "accord-joiner",
        "accord-leaver",
        "accord-mover",
        "accord-reactivation",
    ]
    assert [line.split()[0] for line in lines[:-1]] == [
        *shipped,
        "contractor-end-date",
        "department-move",
        "leaver",
        "pre-hire",
    ]
    assert all(line.endswith("1 tasks  (shipped)") for line in lines[:5])
    assert "user.created" in lines[1]
    assert "at hire_date -P7D (UTC)" in lines[8]
    assert lines[8].endswith("4 tasks")
    assert lines[-1] == f"ok: 4 workflows in {EXAMPLES}, over the shipped ones"


def test_validate_json_gives_one_object_per_workflow(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out, _ = run(capsys, "validate", str(folder), "--json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    by_id = {entry["id"]: entry for entry in entries}
    assert by_id["department-move"]["trigger"] == "user.updated (changed: department)"
    assert by_id["department-move"]["tasks"] == 2
    assert len(by_id["department-move"]["version"]) == 12
    assert by_id["accord-mover"]["trigger"] == "user.updated"


def test_validate_prints_every_problem_as_file_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    pre_hire = folder / "pre-hire.yaml"
    pre_hire.write_text(
        pre_hire.read_text().replace(
            'identity.employee_type == "employee"', 'identity.employe_type == "employee"'
        )
    )
    leaver = folder / "leaver.yaml"
    leaver.write_text(leaver.read_text().replace("duration: P90D", "duration: P3M"))

    code, out, err = run(capsys, "validate", str(folder))

    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"{leaver}:36: tasks[4].duration: ")
    assert "months" in lines[0]
    assert lines[1] == (
        f"{pre_hire}:11: scope: bad expression: line 1, column 10: identity has no field"
        " 'employe_type'"
    )
    assert lines[2] == f"accord: error: 2 problems in {folder}"


def test_validate_checks_target_names_against_the_targets_file(
    capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path
) -> None:
    pre_hire = folder / "pre-hire.yaml"
    pre_hire.write_text(pre_hire.read_text().replace("targets: all ", "targets: [ldap, crm]"))
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - {name: ldap, kind: ldap}\n")

    code, _, err = run(capsys, "validate", str(folder), "--targets", str(targets))

    assert code == 1
    assert f"{pre_hire}:16: tasks[0].targets[1]: unknown target 'crm' (known: ldap)" in err


def test_validate_of_a_missing_folder_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope"))
    assert code == 2
    assert err == f"accord: error: {tmp_path / 'nope'}: not a directory\n"


# --- test -----------------------------------------------------------------------------------


def test_the_shipped_cases_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", *SHIPPED_CASES)
    assert code == 0
    assert out.splitlines()[-1] == "14 passed, 0 failed", out


def test_a_failing_case_exits_1_with_the_difference(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n"
        "  - name: leaver on deactivation\n"
        "    identity: {user_id: u-1, user_name: a}\n"
        "    event: user.deactivated\n"
        "    expect: {runs: [accord-deactivation, leaver]}\n"
        "  - name: wrong\n"
        "    identity: {user_id: u-1, user_name: a}\n"
        "    event: user.deactivated\n"
        "    expect: {runs: []}\n"
    )
    code, out, _ = run(capsys, "test", str(cases))
    assert code == 1
    assert out.splitlines() == [
        "PASS  leaver on deactivation",
        "FAIL  wrong: expected runs [], got [accord-deactivation, leaver]",
        "1 passed, 1 failed",
    ]


def test_a_malformed_case_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - {name: x, identity: {}, expect: {runs: []}}\n")
    code, out, err = run(capsys, "test", str(cases))
    assert (code, out) == (2, "")
    assert err.startswith(f"accord: error: {cases}: ")
    assert "either event or time" in err


def test_test_reads_the_folder_from_accord_workflows_dir(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    (folder / "leaver.yaml").unlink()
    monkeypatch.setenv("ACCORD_WORKFLOWS_DIR", str(folder))
    code, out, _ = run(capsys, "test", str(EXAMPLES / "tests" / "leaver.cases.yaml"))
    assert code == 1
    assert "FAIL  a deactivated employee runs every leaver task" in out


# --- plan -----------------------------------------------------------------------------------


def test_plan_shows_the_runs_and_the_timers_in_utc_and_local_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    identity = tmp_path / "ada.json"
    identity.write_text(json.dumps(ADA))
    code, out, _ = run(
        capsys, "plan", "--identity-file", str(identity), "--at", "2027-02-01T12:00:00Z"
    )
    assert code == 0
    assert out.splitlines() == [
        "identity u-ada at 2027-02-01T12:00:00Z",
        "on user.created:",
        f"  starts accord-joiner (version {_version('accord-joiner')})",
        "    run   accounts (account_saga): no condition",
        "on user.updated:",
        f"  starts accord-mover (version {_version('accord-mover')})",
        "    run   accounts (account_saga): no condition",
        f"  starts department-move (version {_version('department-move')})",
        "    run   keep_access (approval): no condition",
        "    later revoke_not_allowed (revoke_entitlement): when reads vars.*: decided at run time",
        "timers:",
        "  pre-hire: hire_date 2027-03-01 -> 2027-02-21T23:00:00Z (2027-02-22 00:00"
        " Europe/Paris), ahead",
    ]


def test_plan_json_says_when_a_timer_would_fire_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    identity = tmp_path / "cy.json"
    identity.write_text(
        json.dumps({**ADA, "employee_type": "contractor", "leave_date": "2027-06-30"})
    )
    code, out, _ = run(
        capsys, "plan", "--identity-file", str(identity), "--at", "2027-02-01T12:00:00Z", "--json"
    )
    plan = json.loads(out)
    assert code == 0
    by_workflow = {timer["workflow"]: timer for timer in plan["timers"]}
    assert by_workflow["pre-hire"]["in_scope"] is False
    assert by_workflow["pre-hire"]["reason"] == "out of scope"
    assert by_workflow["contractor-end-date"]["in_scope"] is True
    assert by_workflow["contractor-end-date"]["local"] == "2027-06-30 00:00 Europe/Paris"


def test_plan_refuses_a_bad_identity_file_and_a_time_without_offset(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    identity = tmp_path / "x.json"
    identity.write_text("[1]")
    code, _, err = run(capsys, "plan", "--identity-file", str(identity))
    assert code == 2
    assert "a JSON object with a user_id" in err
    with pytest.raises(SystemExit) as exited:
        main(["workflows", "plan", "--identity-file", str(identity), "--at", "2027-02-01T12:00"])
    assert exited.value.code == 2
    assert "has no offset" in capsys.readouterr().err


def test_plan_from_the_registry_needs_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "--identity", "u-1")
    assert code == 2
    assert err == "accord: error: DATABASE_URL is not set\n"


def _version(workflow_id: str) -> str:
    from accord.orchestrator.workflows.cli import load

    return load(EXAMPLES)[workflow_id].version
