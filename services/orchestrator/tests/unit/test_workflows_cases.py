"""Workflow test cases: an identity and an event or a time, and the runs they must start."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.orchestrator.workflows.cases import Case, CaseFileError, load_case_file, run_case
from accord.orchestrator.workflows.cli import EXAMPLES
from accord.orchestrator.workflows.loader import Checks, WorkflowSet, load_folder
from accord.orchestrator.workflows.shipped import with_shipped

SHIPPED = sorted((EXAMPLES / "tests").glob("*.cases.yaml"))


@pytest.fixture(scope="module")
def examples() -> WorkflowSet:
    """The examples alone: what the case mechanism is tested on."""
    return load_folder(EXAMPLES, Checks(expression=lambda text: None))


@pytest.fixture(scope="module")
def in_force(examples: WorkflowSet) -> WorkflowSet:
    """The examples as the engine has them: over the shipped workflows (the sagas)."""
    return with_shipped(examples)


def case(**fields: object) -> Case:
    return Case.model_validate({"name": "c", **fields})


MOVE = {
    "previous": {"user_id": "u-1", "user_name": "hal", "department": "Sales"},
    "identity": {"user_id": "u-1", "user_name": "hal", "department": "Finance"},
    "event": "user.updated",
}
HIRE = {"user_id": "u-2", "employee_type": "employee", "hire_date": "2027-03-01"}


def test_every_example_has_a_case_file() -> None:
    assert {path.name.removesuffix(".cases.yaml") for path in SHIPPED} == {
        path.stem for path in EXAMPLES.glob("*.yaml")
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_the_shipped_cases_pass(in_force: WorkflowSet, path: Path) -> None:
    outcomes = [run_case(in_force, c) for c in load_case_file(path).cases]
    assert [o.line() for o in outcomes if not o.passed] == []


def test_an_event_case_passes_when_runs_and_tasks_are_as_expected(examples: WorkflowSet) -> None:
    outcome = run_case(
        examples,
        case(
            **MOVE,
            expect={"runs": ["department-move"], "tasks": {"department-move": ["keep_access"]}},
        ),
    )
    assert outcome.passed
    assert outcome.line() == "PASS  c"


def test_a_failing_case_says_the_difference(examples: WorkflowSet) -> None:
    outcome = run_case(
        examples,
        case(
            **MOVE,
            expect={
                "runs": ["leaver"],
                "not_runs": ["department-move"],
                "tasks": {"department-move": ["keep_access", "revoke_not_allowed"]},
            },
        ),
    )
    assert not outcome.passed
    assert outcome.line() == (
        "FAIL  c: expected runs [leaver], got [department-move]; "
        "department-move runs, expected not to; "
        "department-move: expected tasks [keep_access, revoke_not_allowed], got [keep_access]"
        " (decided at run time: [revoke_not_allowed])"
    )


def test_a_changed_attribute_the_trigger_does_not_list_starts_no_mover(
    examples: WorkflowSet,
) -> None:
    same_department = {**MOVE, "identity": {**MOVE["previous"], "title": "Lead"}}  # type: ignore[dict-item]
    assert run_case(examples, case(**same_department, expect={"runs": []})).passed


def test_a_time_case_fires_the_timers_at_exactly_that_time(examples: WorkflowSet) -> None:
    at_midnight = case(identity=HIRE, time="2027-02-22T00:00:00Z", expect={"runs": ["pre-hire"]})
    assert run_case(examples, at_midnight).passed
    a_minute_late = case(identity=HIRE, time="2027-02-22T00:01:00Z", expect={"runs": ["pre-hire"]})
    outcome = run_case(examples, a_minute_late)
    assert outcome.line() == (
        "FAIL  c: expected runs [pre-hire], got []; "
        "timers of this identity: pre-hire at 2027-02-22T00:00:00Z"
    )


def test_a_time_case_out_of_scope_says_why(examples: WorkflowSet) -> None:
    contractor = {**HIRE, "employee_type": "contractor"}
    outcome = run_case(
        examples,
        case(identity=contractor, time="2027-02-22T00:00:00Z", expect={"runs": ["pre-hire"]}),
    )
    assert "pre-hire skipped: out of scope" in outcome.line()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"identity": HIRE, "expect": {"runs": []}}, "either event or time"),
        (
            {
                "identity": HIRE,
                "event": "user.created",
                "time": "2027-01-01T00:00:00Z",
                "expect": {"runs": []},
            },
            "either event or time",
        ),
        ({"identity": HIRE, "event": "user.moved", "expect": {"runs": []}}, "not one of"),
        ({"identity": HIRE, "event": "user.created", "expect": {}}, "expect needs"),
        (
            {"identity": {"departmnt": "x"}, "event": "user.created", "expect": {"runs": []}},
            "departmnt",
        ),
        ({"identity": HIRE, "time": "2027-01-01T00:00:00", "expect": {"runs": []}}, "timezone"),
    ],
)
def test_a_malformed_case_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        case(**fields)


def test_a_malformed_case_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "cases:\n  - {name: a, identity: {}, event: user.created, expect: {runs: []}}\n"
        "  - {name: a, identity: {}, event: user.created, expect: {runs: []}}\n"
    )
    with pytest.raises(CaseFileError, match=r"bad\.yaml: .*repeated: a"):
        load_case_file(path)
