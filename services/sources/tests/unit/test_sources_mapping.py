"""Mappings: columns and CEL over `row`; a failing row is reported, the others mapped."""

from __future__ import annotations

import pytest

from accord.sources.config import Source
from accord.sources.csv_reader import SourceRow
from accord.sources.mapping import MappedRow, MappingError, RowMapper
from accord.sources.problems import ProblemKind, RowProblem


def _source(**overrides: object) -> Source:
    data: dict[str, object] = {
        "name": "hr",
        "kind": "csv",
        "csv": {"path": "hr.csv"},
        "key": "id",
        "mappings": {
            "user_name": 'lower(row.first) + "." + lower(row.last)',
            "given_name": "first",
            "email": "mail",
            "hire_date": "hired",
            "employee_type": '"employee"',
            "attributes.site": "site",
        },
        "status": {"column": "status", "active_values": ["A"]},
    }
    data.update(overrides)
    return Source.model_validate(data)


ROW = {
    "id": "1001",
    "first": "Émile",
    "last": "Zola",
    "mail": "emile.zola@example.org",
    "hired": "2025-03-01",
    "site": "",
    "status": "a",
}


def _map(mapper: RowMapper, **changes: str) -> MappedRow | RowProblem:
    return mapper.map(SourceRow(7, {**ROW, **changes}))


def test_columns_expressions_constants_and_status() -> None:
    mapper = RowMapper(_source())
    mapped = _map(mapper)
    assert isinstance(mapped, MappedRow)
    values = dict(zip(mapper.fields, mapped.values, strict=True))
    assert values == {
        "attributes.site": None,  # an empty cell is "not set"
        "email": "emile.zola@example.org",
        "employee_type": "employee",
        "given_name": "Émile",
        "hire_date": "2025-03-01",
        "user_name": "émile.zola",  # lower() is Unicode-aware, unlike lowerAscii()
    }
    assert (mapped.key, mapped.user_id, mapped.active) == ("1001", "hr:1001", True)
    inactive = _map(mapper, status="T")
    assert isinstance(inactive, MappedRow)
    assert inactive.active is False


def test_user_id_and_status_by_expression() -> None:
    mapper = RowMapper(
        _source(
            mappings={"user_name": "mail", "user_id": '"w-" + row.id'},
            status={"expression": 'row.status == "a" && row.site != "closed"'},
        )
    )
    mapped = _map(mapper)
    assert isinstance(mapped, MappedRow)
    assert (mapped.user_id, mapped.active) == ("w-1001", True)
    closed = _map(mapper, site="closed")
    assert isinstance(closed, MappedRow)
    assert closed.active is False


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"mail": "not-an-address"}, "email"),
        ({"hired": "2025-02-30"}, "hire_date"),
        ({"id": " "}, "empty key id"),
        ({"id": "has space"}, "user_id"),
    ],
)
def test_a_bad_row_is_a_problem_with_its_line(changes: dict[str, str], reason: str) -> None:
    problem = _map(RowMapper(_source()), **changes)
    assert isinstance(problem, RowProblem)
    assert (problem.kind, problem.line) == (ProblemKind.UNMAPPABLE, 7)
    assert reason in problem.reason


def test_an_empty_user_name_is_a_problem() -> None:
    problem = _map(RowMapper(_source(mappings={"user_name": "first"})), first="")
    assert isinstance(problem, RowProblem)
    assert "user_name" in problem.reason


def test_an_expression_failing_on_a_row_names_the_field() -> None:
    mapper = RowMapper(_source(mappings={"user_name": "row.nickname"}))
    problem = _map(mapper)
    assert isinstance(problem, RowProblem)
    assert problem.reason.startswith("user_name:")
    assert "nickname" in problem.reason


def test_map_all_keeps_the_good_rows_and_collects_the_bad() -> None:
    mapper = RowMapper(_source())
    rows = [SourceRow(2, ROW), SourceRow(3, {**ROW, "mail": "x"}), SourceRow(4, ROW)]
    problems: list[RowProblem] = []
    assert [row.line for row in mapper.map_all(rows, problems)] == [2, 4]
    assert [problem.line for problem in problems] == [3]


def test_a_bad_expression_fails_the_source_at_once() -> None:
    with pytest.raises(MappingError, match="source 'hr', user_name"):
        RowMapper(_source(mappings={"user_name": "lower(row.first"}))


def test_a_missing_column_fails_the_export_not_each_row() -> None:
    mapper = RowMapper(_source())
    mapper.check_columns(ROW)
    with pytest.raises(MappingError, match="no column mail"):
        mapper.check_columns([column for column in ROW if column != "mail"])
