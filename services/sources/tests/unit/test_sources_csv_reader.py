"""The CSV reader: rows stream out; a bad row is reported with its line and skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from accord.sources.config import CsvOptions
from accord.sources.csv_reader import ExportError, newest_export, open_export
from accord.sources.problems import ProblemKind


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_rows_are_reported_and_the_good_ones_read(tmp_path: Path) -> None:
    data = (
        b"id,first,last\n"
        b"1,Ada,Lovelace\n"
        b"2,Alan\n"  # a column short
        b'3,"Grace\nBrewster",Hopper\n'  # a quoted newline: one row over two lines
        b"4,Ren\xe9,Descartes\n"  # latin-1 in a UTF-8 file
        b"\n"
        b"5,Emmy,Noether,extra\n"
        b"6,Kurt,G\xc3\xb6del\n"
    )
    export = open_export(CsvOptions(path=_write(tmp_path / "hr.csv", data)))
    rows = list(export.rows())
    assert [(row.line, row.values["id"]) for row in rows] == [(2, "1"), (4, "3"), (9, "6")]
    assert rows[1].values["first"] == "Grace\nBrewster"
    assert rows[2].values["last"] == "Gödel"
    assert [(p.line, p.kind) for p in export.problems] == [
        (3, ProblemKind.UNREADABLE),
        (6, ProblemKind.UNREADABLE),
        (8, ProblemKind.UNREADABLE),
    ]
    assert "2 columns, the header has 3" in export.problems[0].reason
    assert "encoding" in export.problems[1].reason


def test_delimiter_encoding_bom_and_no_header(tmp_path: Path) -> None:
    bom = _write(tmp_path / "bom.csv", "\ufeffid;name\n1;Zoë\n".encode())
    export = open_export(CsvOptions(path=bom, delimiter=";"))
    assert export.columns == ("id", "name")
    assert [row.values for row in export.rows()] == [{"id": "1", "name": "Zoë"}]
    latin = _write(tmp_path / "latin.csv", "7\tRené\n".encode("latin-1"))
    options = CsvOptions(
        path=latin, delimiter="\t", encoding="latin-1", header=False, columns=("id", "name")
    )
    assert [row.values for row in open_export(options).rows()] == [{"id": "7", "name": "René"}]


def test_a_folder_gives_its_newest_export(tmp_path: Path) -> None:
    old = _write(tmp_path / "hr-2.csv", b"id\n1\n")
    new = _write(tmp_path / "hr-1.csv", b"id\n2\n")
    _write(tmp_path / "notes.txt", b"not an export")
    os.utime(old, (1_000, 1_000))
    os.utime(new, (2_000, 2_000))
    assert newest_export(tmp_path) == new
    rows = open_export(CsvOptions(path=tmp_path)).rows()
    assert [row.values["id"] for row in rows] == ["2"]


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "no header"), (b"id,id\n1,2\n", "names a column twice: id"), (b"id,\n", "empty")],
)
def test_an_unusable_header_fails_the_export(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        open_export(CsvOptions(path=_write(tmp_path / "x.csv", data)))


def test_no_file_fails_the_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no file matches"):
        newest_export(tmp_path)
