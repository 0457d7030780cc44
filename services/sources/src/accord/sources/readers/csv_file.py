"""The CSV export as a `SourceReader`: the synchronous reader, read in a worker thread.

`csv_reader` stays synchronous (the benchmark and the unit tests read it directly); here its
rows are taken in batches in a worker thread, so a 100,000-row file does not hold the event
loop while it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator

from accord.sources.config import CsvOptions
from accord.sources.csv_reader import CsvExport, SourceRow, open_export
from accord.sources.problems import RowProblem

BATCH = 1_000


class CsvReader:
    """An open CSV export."""

    def __init__(self, export: CsvExport) -> None:
        self._export = export
        self.columns = export.columns

    @property
    def problems(self) -> list[RowProblem]:
        """The export's bad rows, so far."""
        return self._export.problems

    async def rows(self) -> AsyncIterator[SourceRow]:
        """The good rows, BATCH at a time from a worker thread."""
        iterator = self._export.rows()
        while batch := await asyncio.to_thread(_take, iterator):
            for row in batch:
                yield row


def _take(iterator: Iterator[SourceRow]) -> list[SourceRow]:
    return list(itertools.islice(iterator, BATCH))


@contextlib.asynccontextmanager
async def open_csv(options: CsvOptions) -> AsyncIterator[CsvReader]:
    """Open the export (its header read); closed when the block ends, read or not."""
    export = await asyncio.to_thread(open_export, options)
    try:
        yield CsvReader(export)
    finally:
        export.close()
