"""A throwaway MariaDB server (mariadbd from the Debian packages), run as our own child process."""

# `mariadb-install-db` creates the system tables in a new work dir and, with --extra-file, the
# database and a user with a real password in the same bootstrap run (no second connection as
# root to set them up). The server then checks that password like any other: no
# --skip-grant-tables. mariadbd refuses to run as root unless told `--user=root`; we pass it
# rather than switching to the `mysql` account because the work dir lives under a 0700 temp
# dir owned by root, and a private server on 127.0.0.1 gains nothing from another account
# (slapd in ldap_target.py stays root the same way). The socket goes into the work dir, whose
# short mkdtemp path always fits in sun_path. The data is thrown away on stop, so InnoDB
# neither flushes each commit nor writes pages twice: that keeps writes in tests fast.

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path
from urllib.parse import quote

import asyncmy

from accord.stack.errors import StartupError
from accord.stack.lifecycle import Startable
from accord.stack.network import free_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_INSTALL_TIMEOUT = 120.0
_STARTUP_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_PROBE_TIMEOUT = 2
_SBIN = (Path("/usr/sbin"), Path("/usr/local/sbin"))
_BIN = (Path("/usr/bin"), Path("/usr/local/bin"))


def _executable(name: str, candidates: tuple[Path, ...]) -> Path:
    """`name` from PATH or the first candidate dir holding it (sbin is not on every PATH)."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for folder in candidates:
        path = folder / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise StartupError(f"{name} is not installed (MariaDB): run make install")


def mariadbd_executable() -> Path:
    """The MariaDB server executable (usually /usr/sbin/mariadbd)."""
    return _executable("mariadbd", _SBIN)


def _plain(name: str, what: str) -> str:
    """`name` if it needs no quoting in SQL (letters, digits, underscore), else ValueError."""
    if not name or not all(char.isascii() and (char.isalnum() or char == "_") for char in name):
        raise ValueError(f"{what} {name!r} must be ASCII letters, digits and underscores")
    return name


class EmbeddedMariaDB(Startable):
    """MariaDB on 127.0.0.1 with one database and one password user, data in a temp dir.

    The user may do anything (tests create more databases and users with it). The work dir,
    data included, is removed on stop; the log stays when `log_dir` is given.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        database: str = "accord",
        user: str = "accord",
        log_dir: Path | None = None,
    ) -> None:
        """Choose the port (a free one by default), database, user and log dir; a new password."""
        self.port = port if port is not None else free_port(_HOST)
        self.database = _plain(database, "database")
        self.user = _plain(user, "user")
        self.password = secrets.token_urlsafe(18)  # [A-Za-z0-9_-]: nothing to escape in SQL
        self.log_dir = log_dir
        self.startup_seconds: float | None = None
        self._process: ManagedProcess | None = None
        self._work_dir: Path | None = None

    @property
    def dsn(self) -> str:
        """The connection URL, e.g. mysql://accord:PASSWORD@127.0.0.1:PORT/accord."""
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"mysql://{user}:{password}@{_HOST}:{self.port}/{self.database}"

    @property
    def process(self) -> ManagedProcess | None:
        """The mariadbd process, once started."""
        return self._process

    def _log_path(self, work_dir: Path) -> Path:
        return (self.log_dir if self.log_dir is not None else work_dir) / "mariadb.log"

    def _bootstrap_sql(self) -> str:
        account = f"'{self.user}'@'{_HOST}'"
        return "\n".join(
            [
                # The bootstrap runs without the grant tables loaded; CREATE USER needs them.
                "FLUSH PRIVILEGES;",
                f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4;",
                f"CREATE USER {account} IDENTIFIED BY '{self.password}';",
                f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;",
                "",
            ]
        )

    async def start(self) -> None:
        """Create the system tables, database and user, start mariadbd and wait for a login."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        server = mariadbd_executable()
        install = _executable("mariadb-install-db", _BIN)
        work_dir = Path(tempfile.mkdtemp(prefix="accord-mariadb-"))
        self._work_dir = work_dir
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        try:
            await self._install(install, work_dir, as_root)
            self._process = ManagedProcess(
                "mariadbd",
                [
                    str(server),
                    "--no-defaults",  # first: no /etc/mysql config of a packaged server
                    *as_root,
                    f"--datadir={work_dir / 'data'}",
                    f"--socket={work_dir / 'mariadbd.sock'}",
                    f"--pid-file={work_dir / 'mariadbd.pid'}",
                    f"--port={self.port}",
                    f"--bind-address={_HOST}",
                    "--skip-name-resolve",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_unicode_ci",
                    "--innodb-buffer-pool-size=32M",
                    "--innodb-flush-log-at-trx-commit=0",
                    "--skip-innodb-doublewrite",
                ],
                log_path=self._log_path(work_dir),
                # SIGTERM is mariadbd's clean shutdown.
                stop_signal=signal.SIGTERM,
                cwd=work_dir,
            )
            await start_and_wait(
                self._process, self._probe, timeout=_STARTUP_TIMEOUT, what="MariaDB"
            )
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = loop.time() - started
        _logger.info("MariaDB ready on port %d in %.2f s", self.port, self.startup_seconds)

    async def _install(self, install: Path, work_dir: Path, as_root: list[str]) -> None:
        """The system tables, the database and the user in work_dir/data."""
        extra = work_dir / "bootstrap.sql"
        extra.write_text(self._bootstrap_sql())
        extra.chmod(0o600)  # it holds the password
        process = ManagedProcess(
            "mariadb-install-db",
            [
                str(install),
                "--no-defaults",
                *as_root,
                f"--datadir={work_dir / 'data'}",
                # root only through the Unix socket as the OS root: nobody logs in as it.
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--extra-file={extra}",
            ],
            log_path=self._log_path(work_dir),
            cwd=work_dir,
        )
        await process.start()
        try:
            returncode = await asyncio.wait_for(process.wait(), _INSTALL_TIMEOUT)
        except TimeoutError:
            await process.stop()
            raise StartupError(
                f"mariadb-install-db did not finish within {_INSTALL_TIMEOUT:.0f} s: "
                f"{process.describe_exit()}"
            ) from None
        finally:
            extra.unlink(missing_ok=True)
        if returncode != 0:
            raise StartupError(f"mariadb-install-db failed: {process.describe_exit()}")

    async def _probe(self) -> None:
        """Raise unless the user can log in with its password."""
        connection = await asyncmy.connect(
            host=_HOST,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            connect_timeout=_PROBE_TIMEOUT,
        )
        await connection.ensure_closed()

    async def stop(self) -> None:
        """Shut the server down (SIGKILL after 30 s) and remove the work dir; idempotent."""
        if self._process is not None:
            await self._process.stop(timeout=_STOP_TIMEOUT)
        if self._work_dir is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(shutil.rmtree, self._work_dir)
            self._work_dir = None
