"""A throwaway OpenLDAP directory (slapd from the Debian packages) to provision into."""

# slapd reads a slapd.conf written for this run (no cn=config), its mdb database is filled with
# the base entries by `slapd -T add` (slapadd) before it starts, and the whole work dir is removed
# on stop. The memberof overlay maintains memberOf on the members of groupOfNames entries; refint
# removes a deleted or renamed entry's DN from every group's member attribute (both can be left
# out, as a stock slapd has neither). `-d none` keeps
# slapd in the foreground (our child) and logs only its errors; with `-d 0` it logs nothing at
# all, not even why it failed to start. As root it simply stays root (no -u/-g), which is fine
# for a private server on 127.0.0.1 in a private temporary directory.

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from accord.stack.errors import StartupError
from accord.stack.lifecycle import Startable
from accord.stack.network import free_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 30.0
_SLAPADD_TIMEOUT = 60.0
_PROBE_NET_TIMEOUT = 2
_SLAPD_CANDIDATES = (Path("/usr/sbin/slapd"), Path("/usr/local/sbin/slapd"))
_LDAPSEARCH_CANDIDATES = (Path("/usr/bin/ldapsearch"), Path("/usr/local/bin/ldapsearch"))
_SCHEMA_DIR = Path("/etc/ldap/schema")
_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
_MODULE_DIR = Path("/usr/lib/ldap")
# pw-sha2 lets rootpw be a salted SHA-512 hash instead of the password itself.
_MODULES = ("back_mdb", "pw-sha2")
_INTEGRITY_MODULES = ("memberof", "refint")
# A base DN is a few attr=value RDNs with plain ASCII values: nothing to escape in slapd.conf,
# the DN or the LDIF.
_DN_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9](?:[A-Za-z0-9 ._-]*[A-Za-z0-9])?")


def _find_executable(name: str, candidates: tuple[Path, ...]) -> Path | None:
    """Return `name` from PATH or the first existing candidate (sbin is not on every PATH)."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    return next((path for path in candidates if path.is_file() and os.access(path, os.X_OK)), None)


def slapd_executable() -> Path:
    """Return the OpenLDAP server executable (usually /usr/sbin/slapd)."""
    path = _find_executable("slapd", _SLAPD_CANDIDATES)
    if path is None:
        raise StartupError("slapd is not installed: run make install")
    return path


def ldapsearch_executable() -> Path:
    """Return the ldapsearch client (package ldap-utils) used to probe readiness."""
    path = _find_executable("ldapsearch", _LDAPSEARCH_CANDIDATES)
    if path is None:
        raise StartupError("ldapsearch (ldap-utils) is not installed: run make install")
    return path


def _check_dn(dn: str) -> str:
    """Return `dn` if it is a plain DN made of attr=value RDNs, else raise ValueError."""
    if not all(_DN_PATTERN.fullmatch(rdn) for rdn in dn.split(",")):
        raise ValueError(f"unsupported DN {dn!r}: expected attr=value pairs such as dc=accord")
    return dn


def _suffix_entry(base_dn: str) -> str:
    """Return the LDIF of the entry at `base_dn`, by the attribute of its first RDN."""
    attr, _, value = base_dn.split(",", 1)[0].partition("=")
    attr = attr.lower()
    if attr == "dc":
        classes, extra = ["dcObject", "organization"], [f"o: {value}"]
    elif attr == "o":
        classes, extra = ["organization"], []
    elif attr == "ou":
        classes, extra = ["organizationalUnit"], []
    else:
        raise ValueError(f"unsupported base DN {base_dn!r}: it must start with dc=, o= or ou=")
    lines = [f"dn: {base_dn}", *(f"objectClass: {name}" for name in classes), f"{attr}: {value}"]
    return "\n".join([*lines, *extra]) + "\n"


def _ssha512(password: str) -> str:
    """Hash `password` as slapd's {SSHA512} scheme (module pw-sha2) expects."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode("ascii")


class LdapTarget(Startable):
    """OpenLDAP slapd on 127.0.0.1 with ou=people and ou=groups under base_dn, data in a temp dir.

    Groups are groupOfNames: slapd maintains memberOf on their members, and deleting or renaming
    an entry removes or renames it in every group's member attribute. A group must keep one
    member, so when its last member goes that member becomes bind_dn (a placeholder: the admin
    is not an entry of the directory). Without `referential_integrity` slapd is as it comes
    (no memberof, no refint): a deleted or renamed entry stays in the groups under its old DN.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        base_dn: str = "dc=accord,dc=test",
        log_dir: Path | None = None,
        referential_integrity: bool = True,
    ) -> None:
        """Choose the port (a free one by default), the base DN and the log dir; a new password.

        Without a log dir slapd logs into its work dir, which stop() removes.
        """
        self.referential_integrity = referential_integrity
        self._base_dn = _check_dn(base_dn)
        self._suffix_ldif = _suffix_entry(base_dn)
        self.port = port if port is not None else free_port(_HOST)
        self.log_dir = log_dir
        self._password = secrets.token_urlsafe(24)
        self._process: ManagedProcess | None = None
        self._work_dir: Path | None = None

    @property
    def url(self) -> str:
        """The LDAP URL, e.g. ldap://127.0.0.1:PORT (plain LDAP, no TLS)."""
        return f"ldap://{_HOST}:{self.port}"

    @property
    def base_dn(self) -> str:
        """The suffix of the directory, e.g. dc=accord,dc=test."""
        return self._base_dn

    @property
    def people_dn(self) -> str:
        """The container for person entries: ou=people,BASE."""
        return f"ou=people,{self._base_dn}"

    @property
    def groups_dn(self) -> str:
        """The container for group entries: ou=groups,BASE."""
        return f"ou=groups,{self._base_dn}"

    @property
    def bind_dn(self) -> str:
        """The administrator (rootdn) DN: cn=admin,BASE; it may do anything in the directory."""
        return f"cn=admin,{self._base_dn}"

    @property
    def password(self) -> str:
        """The administrator's password, random for every instance."""
        return self._password

    @property
    def process(self) -> ManagedProcess | None:
        """The slapd process, once started."""
        return self._process

    @property
    def work_dir(self) -> Path | None:
        """The temporary directory with slapd.conf and the database while started, else None."""
        return self._work_dir

    def _log_path(self, work_dir: Path) -> Path:
        """Where slapadd and slapd write their output."""
        return (self.log_dir if self.log_dir is not None else work_dir) / "ldap-target.log"

    def _config(self, data_dir: Path) -> str:
        """Return slapd.conf for a database in `data_dir`."""
        lines = [f"include {_SCHEMA_DIR / name}.schema" for name in _SCHEMAS]
        modules = _MODULES + (_INTEGRITY_MODULES if self.referential_integrity else ())
        lines += [f"modulepath {_MODULE_DIR}", *(f"moduleload {name}" for name in modules)]
        lines += [
            # Password hashes only for authentication and their owner; the rest readable.
            "access to attrs=userPassword by self write by anonymous auth by * none",
            "access to * by * read",
            "database mdb",
            f'suffix "{self._base_dn}"',
            f'rootdn "{self.bind_dn}"',
            f"rootpw {_ssha512(self._password)}",
            f'directory "{data_dir}"',
            # A sparse map of at most 256 MiB; the data is thrown away, so no fsync per write.
            "maxsize 268435456",
            "dbnosync",
            "index objectClass eq",
            "index cn,uid,mail eq,sub",
            "index member eq",
        ]
        if self.referential_integrity:
            lines += [
                "overlay memberof",
                "overlay refint",
                "refint_attributes member",
                f'refint_nothing "{self.bind_dn}"',
            ]
        return "\n".join(lines) + "\n"

    def _base_ldif(self) -> str:
        """Return the LDIF of the suffix entry, ou=people and ou=groups."""
        people = f"dn: {self.people_dn}\nobjectClass: organizationalUnit\nou: people\n"
        groups = f"dn: {self.groups_dn}\nobjectClass: organizationalUnit\nou: groups\n"
        return "\n".join([self._suffix_ldif, people, groups])

    def _write_files(self, work_dir: Path) -> tuple[Path, Path]:
        """Write slapd.conf and base.ldif and create the data dir; return both file paths."""
        data_dir = work_dir / "data"
        data_dir.mkdir(mode=0o700)
        config = work_dir / "slapd.conf"
        ldif = work_dir / "base.ldif"
        # The work dir is private (mkdtemp: 0700); rootpw is a salted hash anyway.
        config.write_text(self._config(data_dir))
        ldif.write_text(self._base_ldif())
        return config, ldif

    async def start(self) -> None:
        """Create the directory with its base entries, start slapd and wait for an admin search."""
        if self._process is not None and self._process.running:
            raise RuntimeError(f"the LDAP target is already running at {self.url}")
        slapd = slapd_executable()
        ldapsearch = ldapsearch_executable()
        loop = asyncio.get_running_loop()
        started = loop.time()
        work_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="accord-ldap-"))
        self._work_dir = work_dir
        try:
            config, ldif = await asyncio.to_thread(self._write_files, work_dir)
            log_path = self._log_path(work_dir)
            await self._slapadd(slapd, config, ldif, log_path)
            argv = [str(slapd), "-d", "none", "-f", str(config), "-h", f"{self.url}/"]
            self._process = ManagedProcess("slapd", argv, log_path=log_path, cwd=work_dir)

            async def probe() -> None:
                await self._probe(ldapsearch)

            await start_and_wait(
                self._process, probe, timeout=_STARTUP_TIMEOUT, what="the LDAP target"
            )
        except BaseException:
            await self._remove_work_dir()
            raise
        _logger.info("LDAP target ready at %s in %.2f s", self.url, loop.time() - started)

    async def _slapadd(self, slapd: Path, config: Path, ldif: Path, log_path: Path) -> None:
        """Load `ldif` into the still empty database (slapd in its slapadd mode)."""
        slapadd = ManagedProcess(
            "slapadd",
            [str(slapd), "-T", "add", "-q", "-f", str(config), "-l", str(ldif)],
            log_path=log_path,
            cwd=config.parent,
        )
        await slapadd.start()
        try:
            returncode = await asyncio.wait_for(slapadd.wait(), _SLAPADD_TIMEOUT)
        except BaseException:
            await slapadd.stop()
            raise
        if returncode != 0:
            raise StartupError(
                f"slapadd could not create the LDAP target's database: {slapadd.describe_exit()}"
            )

    async def _probe(self, ldapsearch: Path) -> None:
        """Raise unless the administrator can bind and read the base entry."""
        proc = await asyncio.create_subprocess_exec(
            str(ldapsearch),
            "-x",
            "-LLL",
            "-o",
            f"nettimeout={_PROBE_NET_TIMEOUT}",
            "-H",
            self.url,
            "-D",
            self.bind_dn,
            # The password arrives on stdin, never in the process list.
            "-y",
            "/dev/stdin",
            "-b",
            self._base_dn,
            "-s",
            "base",
            "1.1",
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Ignore ldap.conf and ~/.ldaprc: their defaults must not change the probe.
            env={**os.environ, "LDAPNOINIT": "1"},
        )
        try:
            _, stderr = await proc.communicate(self._password.encode())
        finally:
            # Cancelled by the readiness timeout: the client must not linger.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            message = stderr.decode(errors="replace").strip()
            raise ConnectionError(f"ldapsearch exit status {proc.returncode}: {message}")

    async def _remove_work_dir(self) -> None:
        """Delete the work dir with the configuration and the database, if there is one."""
        work_dir, self._work_dir = self._work_dir, None
        if work_dir is not None:
            await asyncio.to_thread(shutil.rmtree, work_dir, ignore_errors=True)

    async def stop(self) -> None:
        """Stop slapd and delete its work dir (all entries are lost); idempotent."""
        if self._process is not None:
            await self._process.stop()
        await self._remove_work_dir()
