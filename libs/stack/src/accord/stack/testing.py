"""pytest fixtures that start the real parts once per test session.

Enable with `pytest_plugins = ["accord.stack.testing"]`. Tests share one broker and one
PostgreSQL server and stay apart by random ids and fresh databases.

- Broker: KAFKA_BOOTSTRAP_SERVERS (an existing Kafka, of the kind ACCORD_BROKER names), else
  the broker ACCORD_BROKER names started here (`kafka`: one Apache Kafka node; `tansu`), else
  Apache Kafka where Java and its jars are (`make kafka`), else Tansu. The session's
  ACCORD_BROKER is set to the broker's kind, so the clients tests make in-process adapt to it
  as the services do. ACCORD_BROKER=kafka (CI) makes a missing Apache Kafka an error, and
  turns the skips of the tests that need Apache Kafka into failures.
- PostgreSQL: ACCORD_TEST_DATABASE_URL (a server where the tests may create databases),
  else an embedded PostgreSQL in a temporary folder.
- MariaDB: an embedded mariadbd (`make install` installs it) with a database and a password
  user, for the sql source's MariaDB reader; tests create their own databases on it.
- LDAP: an OpenLDAP slapd (`make install` installs it) with an empty ou=people and ou=groups;
  tests share it and stay apart by unique names.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest
import pytest_asyncio

from accord.events.brokers import BROKER_ENV, BrokerName, profile_named
from accord.events.cli import main as accord_main
from accord.runtime import db
from accord.stack.broker import EmbeddedBroker, LocalBroker
from accord.stack.kafka import KafkaBroker, KafkaUnavailable, kafka_lib
from accord.stack.ldap_target import LdapTarget
from accord.stack.mariadb import EmbeddedMariaDB
from accord.stack.postgres import EmbeddedPostgres


def session_broker() -> tuple[BrokerName, str]:
    """The kind of broker the session runs on, and why."""
    chosen = os.environ.get(BROKER_ENV)
    if chosen:
        return profile_named(chosen).name, f"{BROKER_ENV}={chosen}"
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "kafka", "an existing broker (KAFKA_BOOTSTRAP_SERVERS)"
    try:
        kafka_lib()
    except KafkaUnavailable as error:
        return "tansu", f"Apache Kafka cannot run here ({error})"
    return "kafka", "Java and Apache Kafka's jars are here"


def require_apache_kafka() -> None:
    """Skip the test when Apache Kafka cannot run here, saying why; fail instead when the
    session was asked for Apache Kafka (ACCORD_BROKER=kafka, as CI does)."""
    try:
        kafka_lib()
    except KafkaUnavailable as error:
        if os.environ.get(BROKER_ENV) == "kafka":
            pytest.fail(f"{BROKER_ENV}=kafka, but {error}")
        pytest.skip(f"needs Apache Kafka: {error}")


def pytest_report_header() -> str:
    """Which broker the session's tests run on, first thing in pytest's output."""
    kind, why = session_broker()
    name = "Apache Kafka (one KRaft node)" if kind == "kafka" else "Tansu"
    return f"accord broker: {name}, because {why}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Bootstrap servers of the session's broker (see the module docstring)."""
    kind, _ = session_broker()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(BROKER_ENV, kind)
        existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if existing:
            yield existing
            return
        broker: LocalBroker
        if kind == "kafka":
            folder = Path(tmp_path_factory.mktemp("kafka"))
            broker = KafkaBroker(folder / "data", log_dir=folder)
        else:
            broker = EmbeddedBroker()
        await broker.start()
        try:
            yield broker.bootstrap_servers
        finally:
            await broker.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """DSN of a PostgreSQL server (its maintenance database) for the session."""
    existing = os.environ.get("ACCORD_TEST_DATABASE_URL")
    if existing:
        yield existing
        return
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data")
    await server.start()
    try:
        yield server.dsn
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """DSN (mysql://user:password@127.0.0.1:PORT/accord) of a MariaDB server for the session;
    its user may create databases."""
    server = EmbeddedMariaDB(log_dir=Path(tmp_path_factory.mktemp("mariadb")))
    await server.start()
    try:
        yield server.dsn
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ldap_target() -> AsyncIterator[LdapTarget]:
    """A started OpenLDAP server for the session (its data is deleted when the session ends)."""
    target = LdapTarget()
    await target.start()
    try:
        yield target
    finally:
        await target.stop()


async def create_database(server_dsn: str, prefix: str = "accord_test") -> str:
    """A new empty database on the server; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server_dsn.rpartition("/")
    return f"{base}/{name}"


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database(postgres_server: str) -> str:
    """DSN of a database of its own for one test."""
    return await create_database(postgres_server)


@contextlib.asynccontextmanager
async def migrated_pool(
    dsn: str, schema: str, packages: Sequence[str], *, max_size: int = 2
) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a service's schema of `dsn`, with the packages' migrations applied."""
    await db.migrate(dsn, schema, list(packages))
    pool = await db.create_pool(dsn, schema, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


async def run_accord(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `accord ARGV` in a worker thread (it calls asyncio.run): code, stdout, stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(accord_main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def unique() -> str:
    """A random suffix for ids, topics and names."""
    return uuid.uuid4().hex[:10]


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is not in a package (benchmarks/*.py) as a module, its folder on the
    path for its own imports (benchlib)."""
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class is being built.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
