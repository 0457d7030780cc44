"""Change detection: created, updated (changed fields only), status changes, deleted,
unique user names, correlation, duplicates; and the state a second run starts from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from accord.sources.config import Source
from accord.sources.csv_reader import SourceRow
from accord.sources.diff import (
    ChangeKind,
    DiffResult,
    Existing,
    KeyState,
    SourceState,
    Status,
    diff,
)
from accord.sources.mapping import MappedRow, RowMapper
from accord.sources.problems import ProblemKind

SOURCE = Source.model_validate(
    {
        "name": "hr",
        "kind": "csv",
        "csv": {"path": "hr.csv"},
        "key": "id",
        "mappings": {
            "user_name": 'lower(row.first) + "." + lower(row.last)',
            "given_name": "first",
            "family_name": "last",
            "email": "mail",
            "employee_number": "id",
            "department": "dept",
            "hire_date": "hired",
        },
        "status": {"column": "status", "active_values": ["A"]},
    }
)
MAPPER = RowMapper(SOURCE)
CORRELATION = ("employee_number", "email")


def person(key: str, first: str, last: str, **changes: str) -> dict[str, str]:
    row = {
        "id": key,
        "first": first,
        "last": last,
        "mail": f"{first}.{last}@example.org".lower(),
        "dept": "Research",
        "hired": "2025-03-01",
        "status": "A",
    }
    return {**row, **changes}


PEOPLE = [
    person("1", "Ada", "Lovelace"),
    person("2", "Alan", "Turing"),
    person("3", "Grace", "Hopper"),
    person("4", "Emmy", "Noether"),
]


def mapped(rows: Iterable[Mapping[str, str]]) -> list[MappedRow]:
    result = []
    for line, row in enumerate(rows, start=2):
        row_mapped = MAPPER.map(SourceRow(line, dict(row)))
        assert isinstance(row_mapped, MappedRow), row_mapped
        result.append(row_mapped)
    return result


def run(
    previous: SourceState, rows: Iterable[Mapping[str, str]], existing: Existing | None = None
) -> DiffResult:
    return diff(
        previous, mapped(rows), fields=MAPPER.fields, existing=existing, correlation=CORRELATION
    )


def kinds(result: DiffResult) -> list[tuple[ChangeKind, str]]:
    return [(change.kind, change.key) for change in result.changes]


def first_state() -> SourceState:
    return run(SourceState(), PEOPLE).state


def test_a_first_run_creates_everyone_and_a_second_identical_run_changes_nothing() -> None:
    result = run(SourceState(), PEOPLE)
    assert kinds(result) == [(ChangeKind.CREATED, key) for key in "1234"]
    assert result.changes[0].user_id == "hr:1"
    assert result.changes[0].user_name == "ada.lovelace"
    assert result.changes[0].changed == MAPPER.fields
    again = run(result.state, PEOPLE)
    assert again.changes == []
    assert again.problems == []


def test_a_mover_updates_only_the_changed_fields() -> None:
    rows = [*PEOPLE]
    rows[1] = person("2", "Alan", "Turing", dept="Cryptanalysis")
    rows[2] = person("3", "Grace", "Hopper", hired="2025-04-01")
    result = run(first_state(), rows)
    assert kinds(result) == [(ChangeKind.UPDATED, "2"), (ChangeKind.UPDATED, "3")]
    assert result.changes[0].changed == ("department",)
    assert result.changes[1].changed == ("hire_date",)
    values = dict(zip(MAPPER.fields, result.changes[1].values or (), strict=True))
    assert values["hire_date"] == "2025-04-01"


def test_a_renamed_user_is_an_update_with_its_new_user_name() -> None:
    rows = [*PEOPLE]
    rows[0] = person("1", "Ada", "King", mail="ada.lovelace@example.org")
    result = run(first_state(), rows)
    (change,) = result.changes
    assert (change.kind, change.user_id, change.user_name) == (
        ChangeKind.UPDATED,
        "hr:1",
        "ada.king",
    )
    assert set(change.changed) == {"family_name", "user_name"}
    assert result.state.entries["1"].user_name == "ada.king"


def test_status_changes_deactivate_and_reactivate() -> None:
    rows = [*PEOPLE]
    rows[0] = person("1", "Ada", "Lovelace", status="T")
    deactivated = run(first_state(), rows)
    assert kinds(deactivated) == [(ChangeKind.DEACTIVATED, "1")]
    assert deactivated.state.entries["1"].status is Status.INACTIVE
    rows[0] = person("1", "Ada", "Lovelace", dept="Maths")  # back, and moved
    back = run(deactivated.state, rows)
    # reactivated first, so the mover runs on an active identity
    assert kinds(back) == [(ChangeKind.REACTIVATED, "1"), (ChangeKind.UPDATED, "1")]


def test_a_deactivation_with_a_change_updates_first() -> None:
    rows = [*PEOPLE]
    rows[0] = person("1", "Ada", "Lovelace", status="T", dept="Leave")
    assert kinds(run(first_state(), rows)) == [
        (ChangeKind.UPDATED, "1"),
        (ChangeKind.DEACTIVATED, "1"),
    ]


def test_a_row_that_disappears_is_deleted_and_when_it_returns_reactivated() -> None:
    gone = run(first_state(), PEOPLE[1:])
    assert kinds(gone) == [(ChangeKind.DELETED, "1")]
    tombstone = gone.state.entries["1"]
    assert (tombstone.status, tombstone.user_id) == (Status.DELETED, "hr:1")
    still_gone = run(gone.state, PEOPLE[1:])
    assert still_gone.changes == []  # deleted once, not every night
    back = run(gone.state, PEOPLE)
    assert kinds(back) == [(ChangeKind.REACTIVATED, "1")]
    assert back.changes[0].user_id == "hr:1"  # the same identity, not a second one
    assert back.state.entries["1"].status is Status.ACTIVE


def test_a_taken_user_name_gets_a_deterministic_suffix() -> None:
    twin = person("9", "Ada", "Lovelace", mail="ada.l@example.org")
    other = person("10", "Ada", "Lovelace", mail="ada.l2@example.org")
    existing = Existing(user_names={"ada.lovelace2": "scim-7"})
    result = run(first_state(), [*PEOPLE, twin, other], existing)
    names = {change.key: change.user_name for change in result.changes}
    # new keys in key order: "10" < "9"; ada.lovelace2 belongs to an identity from SCIM
    assert names == {"10": "ada.lovelace3", "9": "ada.lovelace4"}
    assert [(p.kind, p.key) for p in result.problems] == [
        (ProblemKind.USER_NAME_TAKEN, "10"),
        (ProblemKind.USER_NAME_TAKEN, "9"),
    ]
    reversed_order = run(first_state(), [*PEOPLE, other, twin], existing)
    assert {c.key: c.user_name for c in reversed_order.changes} == names
    # chosen once: the next run keeps the suffix and publishes nothing
    assert run(result.state, [*PEOPLE, twin, other], existing).changes == []


def test_correlation_links_an_existing_identity_instead_of_creating_one() -> None:
    existing = Existing.of(
        [("scim-1", "alan.turing", None, "Alan.Turing@Example.org"), ("kafka-9", "x", "77", None)]
    )
    rows = [person("2", "Alan", "Turing"), person("77", "Emmy", "Noether", status="T")]
    result = run(SourceState(), rows, existing)
    assert [(c.kind, c.key, c.user_id, c.linked) for c in result.changes] == [
        (ChangeKind.UPDATED, "2", "scim-1", True),  # by e-mail, without case
        (ChangeKind.UPDATED, "77", "kafka-9", True),  # by employee number
        (ChangeKind.DEACTIVATED, "77", "kafka-9", False),
    ]
    # its own user name is no conflict with itself
    assert result.changes[0].user_name == "alan.turing"
    assert result.problems == []


def test_an_ambiguous_match_is_held_and_reported_not_guessed() -> None:
    existing = Existing.of(
        [("a-1", "grace", "3", None), ("b-1", "grace.h", None, "grace.hopper@example.org")]
    )
    existing = Existing(
        existing.user_names,
        {"employee_number": {"3": ("a-1", "b-1")}, "email": existing.by_field["email"]},
    )
    result = run(SourceState(), [person("3", "Grace", "Hopper"), PEOPLE[0]], existing)
    assert kinds(result) == [(ChangeKind.CREATED, "1")]
    (problem,) = result.problems
    assert (problem.kind, problem.key) == (ProblemKind.AMBIGUOUS, "3")
    assert "a-1, b-1" in problem.reason
    assert "3" not in result.state.entries  # tried again next run


def test_two_keys_matching_one_identity_link_once_and_hold_the_other() -> None:
    existing = Existing.of([("scim-1", "ada", None, "shared@example.org")])
    rows = [
        person("1", "Ada", "Lovelace", mail="shared@example.org"),
        person("2", "Alan", "Turing", mail="shared@example.org"),
    ]
    result = run(SourceState(), rows, existing)
    assert [(c.kind, c.key, c.user_id) for c in result.changes] == [
        (ChangeKind.UPDATED, "1", "scim-1")
    ]
    assert [(p.kind, p.key) for p in result.problems] == [(ProblemKind.AMBIGUOUS, "2")]


def test_a_duplicate_key_is_reported_and_the_first_row_taken() -> None:
    rows = [*PEOPLE, person("2", "Alan", "Mathison", dept="Elsewhere")]
    result = run(SourceState(), rows)
    (change,) = [c for c in result.changes if c.key == "2"]
    assert change.user_name == "alan.turing"
    (problem,) = result.problems
    assert (problem.kind, problem.key, problem.line) == (ProblemKind.DUPLICATE_KEY, "2", 6)


def test_a_newly_mapped_field_counts_as_changed_for_everyone() -> None:
    state = first_state()
    # the state of a run before `department` was mapped: one digest slice fewer
    at = state.fields.index("department")
    before = SourceState(
        tuple(name for name in state.fields if name != "department"),
        {
            key: KeyState(
                e.user_id, e.status, e.user_name, e.digest[: at * 8] + e.digest[at * 8 + 8 :]
            )
            for key, e in state.entries.items()
        },
    )
    result = run(before, PEOPLE)
    assert kinds(result) == [(ChangeKind.UPDATED, key) for key in "1234"]
    assert {change.changed for change in result.changes} == {("department",)}


def test_a_row_linked_to_a_leaver_brings_the_identity_back_first() -> None:
    # e.g. a rehire: the identity from SCIM was deleted when the person left
    known = Existing.of([("scim-9", "alan", "2", None), ("scim-8", "ada", "1", None)])
    existing = Existing(known.user_names, known.by_field, inactive=frozenset({"scim-9"}))
    result = run(SourceState(), PEOPLE[:2], existing)
    assert [(c.kind, c.user_id) for c in result.changes] == [
        (ChangeKind.UPDATED, "scim-8"),
        (ChangeKind.REACTIVATED, "scim-9"),
        (ChangeKind.UPDATED, "scim-9"),
    ]


def test_an_inactive_row_deactivates_only_an_active_linked_identity() -> None:
    known = Existing.of([("scim-9", "alan", "2", None), ("scim-8", "ada", "1", None)])
    existing = Existing(known.user_names, known.by_field, inactive=frozenset({"scim-9"}))
    rows = [person("1", "Ada", "Lovelace", status="T"), person("2", "Alan", "Turing", status="T")]
    result = run(SourceState(), rows, existing)
    assert [(c.kind, c.user_id) for c in result.changes] == [
        (ChangeKind.UPDATED, "scim-8"),
        (ChangeKind.DEACTIVATED, "scim-8"),
        (ChangeKind.UPDATED, "scim-9"),
    ]
