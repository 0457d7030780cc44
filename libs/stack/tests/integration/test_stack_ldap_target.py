"""Start the real OpenLDAP target (slapd) and use it with ldap3."""

from __future__ import annotations

import asyncio
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

with warnings.catch_warnings():
    # ldap3 2.9.1 imports pyasn1's tagMap and typeMap, deprecated since pyasn1 0.6.
    warnings.filterwarnings("ignore", r"(tagMap|typeMap) is deprecated", DeprecationWarning)
    from ldap3 import BASE, NONE, Connection, Server
    from ldap3.core.exceptions import LDAPInvalidCredentialsResult, LDAPNoSuchObjectResult

from accord.stack import ldap_target as ldap_target_module
from accord.stack.errors import StartupError
from accord.stack.ldap_target import LdapTarget, slapd_executable

pytestmark = pytest.mark.integration


def admin(target: LdapTarget) -> Connection:
    """An ldap3 connection bound as the target's administrator."""
    return Connection(
        Server(target.url, get_info=NONE, connect_timeout=5),
        user=target.bind_dn,
        password=target.password,
        auto_bind=True,
        raise_exceptions=True,
        receive_timeout=10,
    )


@pytest.fixture
def conn(ldap_target: LdapTarget) -> Iterator[Connection]:
    """An administrator connection to the session's LDAP target."""
    connection = admin(ldap_target)
    try:
        yield connection
    finally:
        connection.unbind()


def read(conn: Connection, dn: str, *attributes: str) -> dict[str, list[str]] | None:
    """The requested attributes of the entry at `dn`, or None if there is no such entry."""
    found = conn.search(
        dn, "(objectClass=*)", BASE, attributes=list(attributes) or ["*"], size_limit=1
    )
    if not found or not conn.response:
        return None
    return {
        name: [str(value) for value in entry_values]
        for name, entry_values in conn.response[0]["attributes"].items()
    }


def exists(conn: Connection, dn: str) -> bool:
    """Whether the entry at `dn` exists."""
    try:
        return read(conn, dn) is not None
    except LDAPNoSuchObjectResult:
        return False


def add_person(conn: Connection, target: LdapTarget, uid: str) -> str:
    """Add an inetOrgPerson under ou=people; return its DN."""
    dn = f"uid={uid},{target.people_dn}"
    conn.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": "Test", "mail": f"{uid}@x.test"})
    return dn


def members_after_change(conn: Connection, group_dn: str, expected: set[str]) -> set[str]:
    """The group's members once they equal `expected` (refint updates after its reply)."""
    deadline = time.monotonic() + 5
    while True:
        entry = read(conn, group_dn, "member")
        assert entry is not None
        members = {dn.lower() for dn in entry.get("member", [])}
        if members == {dn.lower() for dn in expected} or time.monotonic() > deadline:
            return members
        time.sleep(0.05)


async def wait_until_gone(pid: int, timeout: float = 5.0) -> bool:
    """Poll until `pid` no longer runs (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_starts_binds_and_stops(tmp_path: Path) -> None:
    target = LdapTarget(log_dir=tmp_path)
    assert target.url == f"ldap://127.0.0.1:{target.port}"
    assert target.base_dn == "dc=accord,dc=test"
    assert target.people_dn == "ou=people,dc=accord,dc=test"
    assert target.groups_dn == "ou=groups,dc=accord,dc=test"
    assert target.bind_dn == "cn=admin,dc=accord,dc=test"
    assert len(target.password) >= 24
    assert target.password != LdapTarget().password

    started = time.monotonic()
    await target.start()
    try:
        print(f"LDAP target started in {time.monotonic() - started:.2f} s")
        work_dir = target.work_dir
        process = target.process
        assert work_dir is not None
        assert (work_dir / "slapd.conf").is_file()
        assert process is not None
        assert process.running
        assert process.pid is not None
        # The configuration holds a salted hash, never the password itself.
        assert target.password not in (work_dir / "slapd.conf").read_text()
        assert target.password not in " ".join(psutil.Process(process.pid).cmdline())

        conn = admin(target)
        try:
            assert conn.bound
            for dn in (target.base_dn, target.people_dn, target.groups_dn):
                assert exists(conn, dn), dn
            assert conn.extend.standard.who_am_i() == f"dn:{target.bind_dn}"
        finally:
            conn.unbind()

        wrong = Connection(
            Server(target.url, get_info=NONE),
            user=target.bind_dn,
            password=target.password + "x",
            raise_exceptions=True,
        )
        with pytest.raises(LDAPInvalidCredentialsResult):
            wrong.bind()
        wrong.unbind()
    finally:
        await target.stop()

    assert target.work_dir is None
    assert not work_dir.exists()
    assert not process.running
    assert await wait_until_gone(process.pid)
    assert (tmp_path / "ldap-target.log").is_file()
    await target.stop()  # idempotent


async def test_member_of_and_referential_integrity(
    conn: Connection, ldap_target: LdapTarget, unique: str
) -> None:
    alice = add_person(conn, ldap_target, f"alice-{unique}")
    bob = add_person(conn, ldap_target, f"bob-{unique}")
    devs = f"cn=devs-{unique},{ldap_target.groups_dn}"
    solo = f"cn=solo-{unique},{ldap_target.groups_dn}"
    conn.add(devs, ["groupOfNames"], {"cn": f"devs-{unique}", "member": [alice, bob]})
    conn.add(solo, ["groupOfNames"], {"cn": f"solo-{unique}", "member": [alice]})

    alice_entry = read(conn, alice, "memberOf")
    assert alice_entry is not None
    assert {dn.lower() for dn in alice_entry["memberOf"]} == {devs.lower(), solo.lower()}
    # memberOf is operational: only returned when asked for.
    plain = read(conn, alice)
    assert plain is not None
    assert "memberOf" not in plain

    conn.delete(alice)
    assert not exists(conn, alice)
    assert members_after_change(conn, devs, {bob}) == {bob.lower()}
    # groupOfNames needs a member: the last one is replaced by the placeholder bind_dn.
    assert members_after_change(conn, solo, {ldap_target.bind_dn}) == {ldap_target.bind_dn.lower()}
    bob_entry = read(conn, bob, "memberOf")
    assert bob_entry is not None
    assert {dn.lower() for dn in bob_entry["memberOf"]} == {devs.lower()}


async def test_missing_slapd_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(ldap_target_module, "_SLAPD_CANDIDATES", (tmp_path / "slapd",))
    with pytest.raises(StartupError, match="slapd is not installed: run make install"):
        slapd_executable()
    target = LdapTarget()
    with pytest.raises(StartupError, match="run make install"):
        await target.start()
    assert target.work_dir is None


async def test_failed_start_reports_slapd_log_and_cleans_up() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        target = LdapTarget(port=taken.getsockname()[1])
        with pytest.raises(StartupError, match="Address already in use") as info:
            await target.start()
    assert "exited before it was ready" in str(info.value)
    assert target.password not in str(info.value)
    assert target.work_dir is None


@pytest.mark.parametrize(
    "base_dn", ["", "dc=accord,", 'o=a"b', "cn=x,dc=test", "dc=a\nrootpw x", "dc=a+o=b"]
)
def test_unsupported_base_dn_is_rejected(base_dn: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        LdapTarget(base_dn=base_dn)


async def test_other_base_dn(tmp_path: Path) -> None:
    async with LdapTarget(base_dn="o=Example Corp", log_dir=tmp_path) as target:
        conn = admin(target)
        try:
            assert read(conn, target.base_dn, "o") == {"o": ["Example Corp"]}
            assert exists(conn, "ou=people,o=Example Corp")
        finally:
            conn.unbind()
