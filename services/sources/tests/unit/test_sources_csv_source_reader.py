"""The CSV export through the common reader: the same rows and problems, asynchronously."""

from __future__ import annotations

from pathlib import Path

from accord.sources.config import Source
from accord.sources.problems import ProblemKind
from accord.sources.readers import open_reader
from accord.sources.readers.csv_file import BATCH


async def test_a_csv_source_streams_through_open_reader(tmp_path: Path) -> None:
    lines = ["id,name", *(f"{n},Person {n}" for n in range(1, BATCH + 3)), "oops"]
    (tmp_path / "hr.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = Source.model_validate(
        {
            "name": "hr",
            "kind": "csv",
            "csv": {"path": str(tmp_path / "hr.csv")},
            "key": "id",
            "mappings": {"user_name": "name"},
        }
    )
    async with open_reader(source) as reader:
        assert reader.columns == ("id", "name")
        rows = [row async for row in reader.rows()]
        problems = reader.problems
    assert [row.values["id"] for row in rows] == [str(n) for n in range(1, BATCH + 3)]
    assert rows[-1].line == BATCH + 3
    assert [(problem.line, problem.kind) for problem in problems] == [
        (BATCH + 4, ProblemKind.UNREADABLE)
    ]
