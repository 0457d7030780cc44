"""Rows of a CSV export, streamed as dicts; a bad row is reported and skipped.

HR exports are big and imperfect: a stray delimiter in one name, one row saved in another
encoding. A run that failed on the first bad row would leave every good joiner and leaver
waiting for someone to fix the file, so each bad row becomes a `RowProblem` (line and reason)
and reading goes on. Rows are yielded one by one: 100,000 rows never sit in memory as text.

Bytes are decoded with `surrogateescape`, so an undecodable byte does not stop the decoder;
a row holding one is reported instead. A UTF-8 byte order mark (Excel writes one) is skipped.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from accord.sources.config import CsvOptions
from accord.sources.problems import ProblemKind, RowProblem

_ESCAPED = re.compile("[\udc80-\udcff]")


class ExportError(Exception):
    """The export as a whole cannot be read (no file, no header, duplicate columns)."""


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row of the source: its values by column name and where it was."""

    line: int
    values: dict[str, str]


def newest_export(path: Path, pattern: str = "*.csv") -> Path:
    """The file to read: `path` itself, or the newest matching file of a folder (ties by
    name, so two exports written in the same second still give one answer)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise ExportError(f"{path}: no such file or folder")
    files = [candidate for candidate in path.glob(pattern) if candidate.is_file()]
    if not files:
        raise ExportError(f"{path}: no file matches {pattern!r}")
    return max(files, key=lambda candidate: (candidate.stat().st_mtime_ns, candidate.name))


@dataclass
class CsvExport:
    """An open export: its columns, then its rows (once). Problems collect in `problems`."""

    path: Path
    columns: tuple[str, ...]
    _text: TextIO
    _reader: Any
    """The csv module's reader (its type is private); `line_num` counts physical lines."""
    problems: list[RowProblem] = field(default_factory=list)

    def rows(self) -> Iterator[SourceRow]:
        """The good rows, in file order; blank lines are skipped silently."""
        width = len(self.columns)
        try:
            while True:
                start = self._reader.line_num + 1
                try:
                    cells = next(self._reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    self._problem(start, f"CSV syntax: {error}")
                    continue
                if not cells or cells == [""]:
                    continue
                if len(cells) != width:
                    self._problem(start, f"{len(cells)} columns, the header has {width}")
                    continue
                if any(_ESCAPED.search(cell) for cell in cells):
                    self._problem(start, "bytes that are not valid in the export's encoding")
                    continue
                yield SourceRow(start, dict(zip(self.columns, cells, strict=True)))
        finally:
            self._text.close()

    def close(self) -> None:
        """Close the file, whether its rows were read or not (reading to the end closes it)."""
        self._text.close()

    def _problem(self, line: int, reason: str) -> None:
        self.problems.append(RowProblem(ProblemKind.UNREADABLE, line, reason))


def open_export(options: CsvOptions) -> CsvExport:
    """Open the export the options name and read its header (or take `columns`)."""
    path = newest_export(options.path, options.pattern)
    encoding = options.encoding
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    text = path.open(encoding=encoding, errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=options.delimiter)
    columns = options.columns
    if options.header:
        try:
            columns = tuple(cell.strip() for cell in next(reader))
        except (StopIteration, csv.Error) as error:
            text.close()
            raise ExportError(f"{path}: no header row ({error or 'empty file'})") from None
        _check_header(path, columns, text)
    return CsvExport(path, columns, text, reader)


def _check_header(path: Path, columns: tuple[str, ...], text: TextIO) -> None:
    problem = None
    if any(_ESCAPED.search(column) for column in columns):
        problem = "the header is not valid in the export's encoding"
    elif any(not column for column in columns):
        problem = "the header has an empty column name"
    elif len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        problem = f"the header names a column twice: {', '.join(twice)}"
    if problem is not None:
        text.close()
        raise ExportError(f"{path}: {problem}")
