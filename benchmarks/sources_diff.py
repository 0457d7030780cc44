"""Authoritative sources: read + map + diff + safety + events for 10,000 and 100,000 CSV rows.

For each size, a synthetic HR export is written to disk, a first run turns it into
user.created events (empty state), then a second export with exactly 300 changes (100 joins,
100 moves, 97 leaves, 1 deactivation, 1 changed hire date, 1 renamed user) is diffed against
the first run's state. Both runs are timed end to end (the events are built and encoded as
Kafka records, not sent) and the second run's events are checked to be exactly the expected
ones. Each size runs in its own process so that the peak RSS (resource.getrusage) is that
size's alone; the state's own size is summed with getsizeof.
Usage: python benchmarks/sources_diff.py [ROWS ...]   (default: 10000 100000)
"""

from __future__ import annotations

import csv
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from accord.events import to_kafka
from accord.sources.config import Source
from accord.sources.csv_reader import open_export
from accord.sources.diff import SourceState, diff
from accord.sources.events import Sequences, identity_events
from accord.sources.mapping import RowMapper
from accord.sources.problems import RowProblem
from accord.sources.safety import judge_run

COLUMNS = ["employee_number", "first", "last", "mail", "dept", "title", "cost_center",
           "manager", "hired", "status", "site"]  # fmt: skip
DEPARTMENTS = ["Research", "Sales", "Finance", "Support", "Engineering", "Legal", "People"]
TITLES = ["Engineer", "Analyst", "Manager", "Director", "Associate", "Specialist"]
SITES = ["Lyon", "Paris", "Berlin", "Madrid", "Leeds"]


def source(path: Path) -> Source:
    return Source.model_validate(
        {
            "name": "hr",
            "kind": "csv",
            "csv": {"path": str(path)},
            "key": "employee_number",
            "mappings": {
                "user_name": 'lower(row.first) + "." + lower(row.last)',
                "given_name": "first",
                "family_name": "last",
                "display_name": 'row.first + " " + row.last',
                "email": "mail",
                "employee_number": "employee_number",
                "department": "dept",
                "title": "title",
                "cost_center": "cost_center",
                "manager_id": '"hr:" + row.manager',
                "hire_date": "hired",
                "attributes.site": "site",
            },
            "status": {"column": "status", "active_values": ["A"]},
            "correlation": [{"by": "employee_number"}, {"by": "email"}],
        }
    )


def person(n: int, rng: random.Random) -> dict[str, str]:
    first, last = f"First{n}", f"Last{rng.randrange(1_000_000)}"
    return {
        "employee_number": f"E{n:07d}",
        "first": first,
        "last": last,
        "mail": f"{first}.{last}.{n}@example.org".lower(),
        "dept": rng.choice(DEPARTMENTS),
        "title": rng.choice(TITLES),
        "cost_center": f"CC{rng.randrange(100):03d}",
        "manager": f"E{rng.randrange(1, 1000):07d}",
        "hired": f"20{rng.randrange(10, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "status": "A",
        "site": rng.choice(SITES),
    }


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def second_export(
    rows: list[dict[str, str]], rng: random.Random
) -> tuple[list[dict[str, str]], Counter[str]]:
    """The 300 changes, and the events they must give (one each)."""
    size = len(rows)
    picked = rng.sample(range(size), 200)
    movers, leavers = picked[:100], set(picked[100:197])
    deactivated, hire, renamed = picked[197:200]
    changed = [dict(row) for row in rows]
    for i in movers:
        changed[i]["dept"] = "Moved-" + changed[i]["dept"]
    changed[deactivated]["status"] = "T"
    changed[hire]["hired"] = "2027-01-04"
    changed[renamed]["last"] = "Renamed"
    new_rows = [row for i, row in enumerate(changed) if i not in leavers]
    new_rows += [person(size + 1 + j, rng) for j in range(100)]
    expected = Counter(
        {"user.created": 100, "user.updated": 102, "user.deleted": 97, "user.deactivated": 1}
    )
    return new_rows, expected


def one_run(
    mapper: RowMapper, src: Source, previous: SourceState, sequences: Sequences
) -> tuple[SourceState, Counter[str], int, float, bool]:
    started = time.perf_counter()
    assert src.csv is not None
    export = open_export(src.csv)
    mapper.check_columns(export.columns)
    problems: list[RowProblem] = []
    rows = mapper.map_all(export.rows(), problems)
    fields = mapper.fields
    correlation = [rule.by for rule in src.correlation]
    result = diff(previous, rows, fields=fields, correlation=correlation)
    verdict = judge_run(previous, result, src.safety)
    counts: Counter[str] = Counter()
    for event in identity_events(
        result.changes, fields=fields, source_name=src.name, sequences=sequences, run_id="bench"
    ):
        to_kafka(event)
        counts[event.type] += 1
    elapsed = time.perf_counter() - started
    assert not problems, problems[:3]
    assert not export.problems, export.problems[:3]
    return result.state, counts, len(result.state.entries), elapsed, verdict.held


def state_bytes(state: SourceState) -> int:
    total = sys.getsizeof(state.entries)
    for key, entry in state.entries.items():
        total += sys.getsizeof(key) + sys.getsizeof(entry) + sys.getsizeof(entry.digest)
        total += sys.getsizeof(entry.user_id) + sys.getsizeof(entry.user_name)
    return total


def measure(size: int) -> None:
    rng = random.Random(size)  # noqa: S311 (synthetic data, reproducible)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hr.csv"
        rows = [person(n, rng) for n in range(1, size + 1)]
        write(path, rows)
        src = source(path)
        mapper = RowMapper(src)
        sequences = Sequences()
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        state, counts, _, first, _ = one_run(mapper, src, SourceState(), sequences)
        assert counts == Counter({"user.created": size}), counts
        new_rows, expected = second_export(rows, rng)
        del rows
        write(path, new_rows)
        state, counts, keys, second, held = one_run(mapper, src, state, sequences)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert counts == expected, (counts, expected)
        assert not held
        print(
            f"{size:>7,} rows | first run (all created) {first:6.2f} s, {size / first:9,.0f} rows/s"
            f" | second run (300 changes) {second:6.2f} s, {len(new_rows) / second:9,.0f} rows/s"
            f" | state {keys:,} keys, {state_bytes(state) / 2**20:.1f} MiB"
            f" | peak RSS {peak / 1024:.0f} MiB (after imports {baseline / 1024:.0f} MiB)"
            f" | events {dict(counts)}",
            flush=True,
        )


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [10_000, 100_000]
    if len(sizes) == 1:
        measure(sizes[0])
        return
    for size in sizes:  # one process per size: peak RSS is per size
        subprocess.run([sys.executable, __file__, str(size)], check=True)  # noqa: S603


if __name__ == "__main__":
    main()
