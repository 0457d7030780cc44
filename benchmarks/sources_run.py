"""Authoritative sources on real parts: whole runs on PostgreSQL, the relay to the broker, and
the readers' throughput from a PostgreSQL view, MariaDB and slapd.

`sources_diff.py` times the pure core; this times what an operator waits for. For 10,000 and
100,000 CSV rows (sources_diff's people and its second export with exactly 300 changes),
each size in its own process (so the peak RSS is that size's) on its own database:

- each run is timed whole and split, without touching the runner, where its own calls show:
  the progress callback's last call (every row read and mapped), then BEGIN and COMMIT of its
  one write transaction (asyncpg's query logger): read+map, state+diff, write transaction
  (events built as COPY takes them, the outbox COPY, the new state, the run's row).
- after each real run the outbox relay (accord.runtime.outbox.OutboxRelay) drains it to the
  broker (Apache Kafka, one KRaft node, unless --broker tansu or ACCORD_BROKER=tansu).
- correctness, not speed, is asserted: the second run writes exactly its 300 change events
  and one source.run_completed, and the relay publishes every row of the outbox.

Then the readers alone (open_reader, rows counted, not mapped) for the same people from a
PostgreSQL view, a MariaDB table and an OpenLDAP directory (loaded with ldapadd), and a whole
first run_source of the view and of the MariaDB table. Loading 100,000 entries into slapd
with ldapadd takes about two minutes here, so the directory has 10,000 unless --ldap-rows.
Usage: python benchmarks/sources_run.py [--broker kafka|tansu] [--ldap-rows N] [ROWS ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncmy
import asyncpg
from benchlib import brokers
from sources_diff import COLUMNS, person, second_export, source, write

from accord.events import from_kafka
from accord.events.brokers import broker_profile
from accord.events.topic_layout import COMPOSE
from accord.runtime import db
from accord.runtime.kafka import ensure_topics, make_producer
from accord.runtime.outbox import OutboxRelay
from accord.sources.config import Source
from accord.sources.readers import open_reader
from accord.sources.runner import run_source

SCHEMA = "sources"
MIGRATIONS = ["accord.sources.migrations"]
DSN_ENV = "BENCH_SOURCE_DSN"
LDAP_PASSWORD_ENV = "BENCH_LDAP_PASSWORD"  # noqa: S105 (a variable's name, not a password)


@dataclass
class Timed:
    """One real run, split where the runner's own calls show: its progress callback's last
    call (every row read and mapped) and its write transaction (BEGIN to COMMIT, as asyncpg's
    query logger reports them)."""

    rows: int
    read_map_s: float
    diff_s: float
    """From the last row mapped to BEGIN: the state loaded, the diff, the safety verdict."""
    write_s: float
    """BEGIN to COMMIT: the events built (lazily, as COPY asks for them), the outbox COPY,
    the new state and the run's row."""
    total_s: float
    events: int

    def line(self, label: str) -> str:
        return (
            f"  {label:<26} {self.total_s:7.2f} s {self.rows / self.total_s:9,.0f} rows/s"
            f" | read+map {self.read_map_s:5.2f} s, state+diff {self.diff_s:5.2f} s,"
            f" write tx {self.write_s:5.2f} s | {self.events:,} events to the outbox,"
            f" {self.events / self.write_s:9,.0f} events/s in the tx"
        )


async def database(server_dsn: str, name: str) -> str:
    """A new database on the server, its DSN."""
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server_dsn.rsplit("/", 1)[0] + "/" + name


async def migrated(server_dsn: str, name: str) -> tuple[str, asyncpg.Pool]:
    dsn = await database(server_dsn, name)
    await db.migrate(dsn, SCHEMA, MIGRATIONS)
    return dsn, await db.create_pool(dsn, SCHEMA, max_size=2)


async def timed_run(
    pool: asyncpg.Pool, src: Source, environ: Mapping[str, str] | None = None
) -> Timed:
    """A real run, timed (see Timed), checked to publish and to find no problem."""
    mapped: list[float] = []
    transaction: dict[str, float] = {}

    def logged(record: Any) -> None:  # called soon after the statement returned
        statement = record.query.strip().upper()
        if statement.startswith("BEGIN"):
            transaction["begin"] = time.monotonic() - record.elapsed
        elif statement.startswith("COMMIT"):
            transaction["commit"] = time.monotonic()

    started = time.monotonic()
    async with pool.acquire() as conn:
        conn.add_query_logger(logged)
        try:
            report = await run_source(
                conn,
                SCHEMA,
                src,
                trigger="command",
                environ=environ,
                progress=lambda _: mapped.append(time.monotonic()),
            )
        finally:
            conn.remove_query_logger(logged)
    total = time.monotonic() - started
    assert not report.verdict.held, report.verdict.reason
    assert not report.problems, report.problems[:3]
    begin, commit = transaction["begin"], transaction["commit"]
    return Timed(
        report.record.rows_read,
        read_map_s=mapped[-1] - started,
        diff_s=begin - mapped[-1],
        write_s=commit - begin,
        total_s=total,
        events=report.published + 1,
    )


async def outbox_types(pool: asyncpg.Pool) -> Counter[str]:
    rows = await pool.fetch("SELECT topic, key, value, headers FROM outbox")
    types: Counter[str] = Counter()
    for row in rows:
        headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
        types[from_kafka(row["topic"], row["key"], row["value"], headers).type] += 1
    return types


async def relay(dsn: str, pool: asyncpg.Pool) -> str:
    """Drain the outbox to the broker with the service's relay: the figure's line."""
    count: int = await pool.fetchval("SELECT count(*) FROM outbox")
    topics = [row["topic"] for row in await pool.fetch("SELECT DISTINCT topic FROM outbox")]
    await ensure_topics(topics, COMPOSE, with_configs=broker_profile().topic_configs)
    producer = make_producer()
    await producer.start()
    try:
        outbox = OutboxRelay(dsn, SCHEMA, producer, poll_interval=0.05)
        started = time.perf_counter()
        task = asyncio.create_task(outbox.run())
        while outbox.published < count:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        elapsed = time.perf_counter() - started
        await outbox.stop()
        await asyncio.wait_for(task, 30)
    finally:
        await producer.stop()
    assert outbox.published == count, (outbox.published, count)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    rate = f"{count / elapsed:9,.0f} events/s ({count:,} events)"
    return f"  {'relay to the broker':<26} {elapsed:7.2f} s {rate}"


async def csv_size(size: int, server_dsn: str) -> None:
    """Both runs of one size, each followed by the relay; printed as they finish."""
    dsn, pool = await migrated(server_dsn, f"bench_csv_{size}")
    rng = random.Random(size)  # noqa: S311 (synthetic data, reproducible)
    lines = [f"{size:,} CSV rows"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "hr.csv"
            rows = [person(n, rng) for n in range(1, size + 1)]
            write(path, rows)
            src = source(path)
            first = await timed_run(pool, src)
            assert first.events == size + 1, first.events
            lines += [first.line("first run (all created)"), await relay(dsn, pool)]
            new_rows, expected = second_export(rows, rng)
            del rows
            write(path, new_rows)
            second = await timed_run(pool, src)
            types = await outbox_types(pool)
            assert types == expected + Counter({"source.run_completed": 1}), types
            lines += [second.line("second run (300 changes)"), await relay(dsn, pool)]
            keys = await pool.fetchval("SELECT count(*) FROM source_keys")
            keys_bytes = await pool.fetchval("SELECT pg_total_relation_size('source_keys')")
    finally:
        await pool.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lines.append(
        f"  state: source_keys {keys:,} rows, {keys_bytes / 2**20:.1f} MiB with indexes"
        f" | peak RSS of the process {peak / 1024:.0f} MiB"
    )
    print("\n".join(lines), flush=True)


def people_tuples(size: int) -> list[tuple[str, ...]]:
    rng = random.Random(size)  # noqa: S311 (the same people as the CSV runs)
    return [tuple(person(n, rng)[column] for column in COLUMNS) for n in range(1, size + 1)]


def as_kind(kind: str, options: dict[str, Any], **changes: Any) -> Source:
    """sources_diff's source, read from another kind of source."""
    base = source(Path("unused.csv")).model_dump(mode="json", exclude={"csv"}, exclude_none=True)
    return Source.model_validate({**base, "kind": kind, kind: options, **changes})


async def read_all(src: Source, environ: Mapping[str, str]) -> tuple[int, float]:
    """Rows read through the source's reader, and the seconds it took."""
    started = time.perf_counter()
    count = 0
    async with open_reader(src, environ) as reader:
        async for _ in reader.rows():
            count += 1
        assert not reader.problems, reader.problems[:3]
    return count, time.perf_counter() - started


def reader_line(label: str, count: int, seconds: float) -> str:
    return f"  {label:<26} {seconds:7.2f} s {count / seconds:9,.0f} rows/s ({count:,} rows)"


async def full_run(server_dsn: str, name: str, src: Source, environ: Mapping[str, str]) -> str:
    _, pool = await migrated(server_dsn, name)
    try:
        timed = await timed_run(pool, src, environ)
    finally:
        await pool.close()
    return timed.line("whole first run_source")


async def postgres_readers(size: int, server_dsn: str) -> list[str]:
    dsn = await database(server_dsn, "bench_hr")
    conn = await asyncpg.connect(dsn)
    try:
        columns = ", ".join(f"{column} text" for column in COLUMNS)
        await conn.execute(f"CREATE SCHEMA hr; CREATE TABLE hr.people ({columns})")
        await conn.copy_records_to_table(
            "people", schema_name="hr", records=people_tuples(size), columns=list(COLUMNS)
        )
        await conn.execute("CREATE VIEW hr.workers AS SELECT * FROM hr.people; ANALYZE hr.people")
    finally:
        await conn.close()
    src = as_kind("sql", {"dsn_env": DSN_ENV, "view": "hr.workers"})
    environ = {DSN_ENV: dsn}
    count, seconds = await read_all(src, environ)
    assert count == size, count
    return [
        f"PostgreSQL view of {size:,} people (sql reader, prefetch 500)",
        reader_line("reader alone", count, seconds),
        await full_run(server_dsn, "bench_sql_run", src, environ),
    ]


async def mariadb_readers(size: int, server_dsn: str) -> list[str]:
    from accord.stack.mariadb import EmbeddedMariaDB

    mariadb = EmbeddedMariaDB()
    await mariadb.start()
    try:
        conn = await asyncmy.connect(
            host="127.0.0.1",
            port=mariadb.port,
            user=mariadb.user,
            password=mariadb.password,
            database=mariadb.database,
        )
        try:
            async with conn.cursor() as cursor:
                columns = ", ".join(f"{column} VARCHAR(120)" for column in COLUMNS)
                await cursor.execute(f"CREATE TABLE people ({columns}) ENGINE=InnoDB")
                marks = ", ".join(["%s"] * len(COLUMNS))
                people = people_tuples(size)
                for start in range(0, size, 5_000):
                    chunk = people[start : start + 5_000]
                    await cursor.executemany(f"INSERT INTO people VALUES ({marks})", chunk)  # noqa: S608
            await conn.commit()
        finally:
            conn.close()
        src = as_kind("sql", {"dsn_env": DSN_ENV, "view": "people"})
        environ = {DSN_ENV: mariadb.dsn}
        count, seconds = await read_all(src, environ)
        assert count == size, count
        return [
            f"MariaDB table of {size:,} people (sql reader on mysql://, prefetch 500)",
            reader_line("reader alone", count, seconds),
            await full_run(server_dsn, "bench_mariadb_run", src, environ),
        ]
    finally:
        await mariadb.stop()


def ldif(size: int, people_dn: str) -> str:
    entries = []
    for row in people_tuples(size):
        p = dict(zip(COLUMNS, row, strict=True))
        entries.append(
            f"dn: uid={p['employee_number']},{people_dn}\nobjectClass: inetOrgPerson\n"
            f"uid: {p['employee_number']}\ncn: {p['first']} {p['last']}\nsn: {p['last']}\n"
            f"givenName: {p['first']}\nmail: {p['mail']}\ndepartmentNumber: {p['dept']}\n"
            f"title: {p['title']}\nemployeeType: {p['status']}\n"
        )
    return "\n".join(entries)


async def ldap_readers(size: int) -> list[str]:
    from accord.stack.ldap_target import LdapTarget, ldapsearch_executable

    async with LdapTarget(referential_integrity=False) as ldap, _folder() as folder:
        (folder / "people.ldif").write_text(ldif(size, ldap.people_dn))
        secret = folder / "password"
        secret.write_text(ldap.password)
        started = time.perf_counter()
        ldapadd = ldapsearch_executable().with_name("ldapadd")
        argv = ["-x", "-H", ldap.url, "-D", ldap.bind_dn, "-y", str(secret)]
        loading = await asyncio.create_subprocess_exec(
            str(ldapadd),
            *argv,
            "-f",
            str(folder / "people.ldif"),
            env={**os.environ, "LDAPNOINIT": "1"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await loading.communicate()
        assert loading.returncode == 0, stderr[-500:]
        load_s = time.perf_counter() - started
        attributes = ["uid", "givenName", "sn", "mail", "departmentNumber", "title"]
        options = {
            "url": ldap.url,
            "bind_dn": ldap.bind_dn,
            "password_env": LDAP_PASSWORD_ENV,
            "base_dn": ldap.people_dn,
            "scope": "one",
            "filter": "(objectClass=inetOrgPerson)",
            "attributes": [*attributes, "employeeType"],
        }
        src = as_kind("ldap", options, key="uid", mappings={"user_name": "uid"}, status=None,
                      correlation=[])  # fmt: skip
        count, seconds = await read_all(src, {LDAP_PASSWORD_ENV: ldap.password})
        assert count == size, count
        return [
            f"OpenLDAP (slapd, mdb) with {size:,} inetOrgPerson entries"
            f" (loaded by ldapadd in {load_s:.1f} s), paged search of 500",
            reader_line("reader alone", count, seconds),
        ]


@contextlib.asynccontextmanager
async def _folder() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-ldap-") as folder:
        yield Path(folder)


async def readers(size: int, ldap_size: int, server_dsn: str) -> None:
    print("\n".join(await postgres_readers(size, server_dsn)), flush=True)
    print("\n".join(await mariadb_readers(size, server_dsn)), flush=True)
    print("\n".join(await ldap_readers(ldap_size)), flush=True)


def child(argv: list[str], env: Mapping[str, str]) -> None:
    subprocess.run([sys.executable, __file__, *argv], check=True, env=dict(env))  # noqa: S603


@contextlib.asynccontextmanager
async def parts(broker_kind: str) -> AsyncIterator[tuple[str, str]]:
    """The broker's bootstrap servers and the PostgreSQL server's DSN, while they run."""
    from accord.stack.broker import EmbeddedBroker, LocalBroker
    from accord.stack.kafka import KafkaBroker
    from accord.stack.postgres import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="accord-sources-run-") as home:
        broker: LocalBroker
        if broker_kind == "kafka":
            broker = KafkaBroker(Path(home) / "kafka", log_dir=Path(home))
        else:
            broker = EmbeddedBroker(log_dir=Path(home))
        postgres = EmbeddedPostgres(Path(home) / "pg")
        await broker.start()
        try:
            await postgres.start()
            try:
                yield broker.bootstrap_servers, postgres.dsn
            finally:
                await postgres.stop()
        finally:
            await broker.stop()


async def main(sizes: list[int], ldap_size: int, broker_flag: str | None) -> None:
    profile = brokers.prepare(broker_flag)
    print(f"sources on real parts: PostgreSQL (embedded), {profile.name} (one node)", flush=True)
    async with parts(profile.name) as (bootstrap, dsn):
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BENCH_PG": dsn}
        for size in sizes:  # one process per size: the peak RSS is that size's
            await asyncio.to_thread(child, ["--child-csv", str(size)], env)
        argv = ["--child-readers", str(max(sizes)), "--ldap-rows", str(ldap_size)]
        await asyncio.to_thread(child, argv, env)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--broker", choices=["kafka", "tansu"])
    parser.add_argument("--ldap-rows", type=int, default=10_000)
    parser.add_argument("--child-csv", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-readers", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def run(args: argparse.Namespace) -> None:
    entry: Callable[[], Any]
    if args.child_csv:
        entry = lambda: csv_size(args.child_csv, os.environ["BENCH_PG"])  # noqa: E731
    elif args.child_readers:
        server = os.environ["BENCH_PG"]
        entry = lambda: readers(args.child_readers, args.ldap_rows, server)  # noqa: E731
    else:
        entry = lambda: main(args.sizes, args.ldap_rows, args.broker)  # noqa: E731
    asyncio.run(entry())


if __name__ == "__main__":
    run(arguments())
