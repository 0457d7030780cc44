"""The policy holder: hot reload that keeps the last good policy set in force."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from accord.authz.catalogue import CatalogueError
from accord.authz.domain.policy_files import default_policy_dir, read_policy_files
from accord.authz.domain.policy_set import PolicyError
from accord.authz.policy_holder import PolicyHolder, load_snapshot

EXTRA = """\
@id("sales-may-read-the-wiki")
permit (principal is User, action == Action::"request", resource == Entitlement::"wiki/reader")
when { principal has department && principal.department == "Sales" };
"""

BROKEN = """\
@id("fine")
permit (principal, action, resource);

@id("broken")
permit (principal, action resource);
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped policy folder (policies, schema, catalogue)."""
    copy = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), copy, ignore=shutil.ignore_patterns("tests"))
    return copy


def shipped_ids() -> set[str]:
    return set(load_snapshot(default_policy_dir()).policies.policy_ids)


def test_a_good_folder_loads(folder: Path) -> None:
    holder = PolicyHolder(folder)

    snapshot = holder.current
    assert set(snapshot.policies.policy_ids) == shipped_ids()
    assert "wiki" in snapshot.catalogue.applications
    assert snapshot.version == read_policy_files(folder).version
    assert len(snapshot.version) == 64
    assert snapshot.loaded_at.tzinfo is not None
    assert holder.last_error is None


def test_the_version_is_the_hash_of_the_files_not_of_their_place(
    folder: Path, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    shutil.copytree(folder, other)

    assert PolicyHolder(other).current.version == PolicyHolder(folder).current.version


def test_a_bad_folder_at_start_is_an_error(folder: Path, tmp_path: Path) -> None:
    (folder / "zz.cedar").write_text(BROKEN, encoding="utf-8")

    with pytest.raises(PolicyError, match=r"zz\.cedar:5: syntax error"):
        PolicyHolder(folder)
    with pytest.raises(NotADirectoryError):
        PolicyHolder(tmp_path / "missing")


def test_unchanged_files_do_not_reload(folder: Path) -> None:
    holder = PolicyHolder(folder)
    before = holder.current

    assert not holder.changed()
    assert holder.reload_if_changed() is None
    assert holder.reload() is True
    assert holder.current is before


def test_an_edit_reloads(folder: Path) -> None:
    holder = PolicyHolder(folder)
    before = holder.current

    (folder / "extra.cedar").write_text(EXTRA, encoding="utf-8")

    assert holder.changed()
    assert holder.reload_if_changed() is True
    assert holder.current.version != before.version
    assert set(holder.current.policies.policy_ids) == shipped_ids() | {"sales-may-read-the-wiki"}
    assert holder.current.loaded_at >= before.loaded_at
    assert not holder.changed()


def test_a_bad_edit_keeps_the_old_set_and_says_where_and_why(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = PolicyHolder(folder)
    before = holder.current

    (folder / "zz.cedar").write_text(BROKEN, encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="accord.authz.policy_holder"):
        assert holder.reload() is False

    assert holder.current is before
    assert holder.last_error is not None
    # Line 5, where the missing comma is, not line 4, where the policy starts.
    assert holder.last_error.startswith(f"{folder / 'zz.cedar'}:5: syntax error")
    assert f"{folder / 'zz.cedar'}:5: syntax error" in caplog.text
    status = holder.status()
    assert status["version"] == before.version
    assert status["last_error"] == holder.last_error


def test_a_refused_set_is_not_tried_again_until_it_changes(folder: Path) -> None:
    holder = PolicyHolder(folder)
    (folder / "zz.cedar").write_text(BROKEN, encoding="utf-8")

    assert holder.reload_if_changed() is False
    assert not holder.changed()
    assert holder.reload_if_changed() is None


def test_fixing_the_edit_reloads_and_clears_the_error(folder: Path) -> None:
    holder = PolicyHolder(folder)
    (folder / "zz.cedar").write_text(BROKEN, encoding="utf-8")
    assert holder.reload() is False

    (folder / "zz.cedar").write_text(EXTRA, encoding="utf-8")

    assert holder.reload_if_changed() is True
    assert holder.last_error is None
    assert "sales-may-read-the-wiki" in holder.current.policies.policy_ids


def test_reverting_a_bad_edit_clears_the_error(folder: Path) -> None:
    holder = PolicyHolder(folder)
    before = holder.current
    (folder / "zz.cedar").write_text(BROKEN, encoding="utf-8")
    assert holder.reload() is False

    (folder / "zz.cedar").unlink()

    assert holder.reload_if_changed() is True
    assert holder.current is before
    assert holder.last_error is None


def test_a_bad_catalogue_is_refused_too(folder: Path) -> None:
    holder = PolicyHolder(folder)
    before = holder.current

    (folder / "catalogue.yaml").write_text("applications: {wiki: {roles: {}}}\n")

    assert holder.reload() is False
    assert holder.current is before
    assert holder.last_error is not None
    assert holder.last_error.startswith(f"{folder / 'catalogue.yaml'}: ")
    with pytest.raises(CatalogueError):
        load_snapshot(folder)


def test_a_catalogue_edit_reloads(folder: Path) -> None:
    holder = PolicyHolder(folder)

    (folder / "catalogue.yaml").write_text(
        "applications: {crm: {entitlements: {user: {risk: low}}}}\n"
    )

    assert holder.reload_if_changed() is True
    assert set(holder.current.catalogue.applications) == {"crm"}


def test_a_vanished_folder_is_refused_once(folder: Path) -> None:
    holder = PolicyHolder(folder)
    before = holder.current
    shutil.rmtree(folder)

    assert holder.reload_if_changed() is False
    assert holder.current is before
    assert holder.last_error == f"policy folder not found: {folder}"
    assert holder.reload_if_changed() is None


def test_unknown_annotations_are_accepted(folder: Path) -> None:
    holder = PolicyHolder(folder)
    (folder / "extra.cedar").write_text('@owner("team-iam")\n' + EXTRA, encoding="utf-8")

    assert holder.reload() is True, holder.last_error


def test_a_configmap_style_symlink_swap_reloads(tmp_path: Path, folder: Path) -> None:
    # Kubernetes mounts a ConfigMap as links to ..data/<file>, ..data linking to a
    # timestamped folder; an update writes a new folder and renames a new ..data over it.
    mount = tmp_path / "mount"
    mount.mkdir()
    shutil.copytree(folder, mount / "..v1")
    (mount / "..data").symlink_to("..v1")
    for file in (mount / "..v1").iterdir():
        (mount / file.name).symlink_to(Path("..data") / file.name)
    holder = PolicyHolder(mount)
    assert holder.current.version == PolicyHolder(folder).current.version

    shutil.copytree(mount / "..v1", mount / "..v2")
    (mount / "..v2" / "extra.cedar").write_text(EXTRA, encoding="utf-8")
    (mount / "extra.cedar").symlink_to(Path("..data") / "extra.cedar")
    (mount / "..data_tmp").symlink_to("..v2")
    (mount / "..data_tmp").replace(mount / "..data")

    assert holder.reload_if_changed() is True
    assert "sales-may-read-the-wiki" in holder.current.policies.policy_ids


def test_status_reports_what_is_in_force(folder: Path) -> None:
    holder = PolicyHolder(folder)

    status = holder.status()

    assert status == {
        "version": holder.current.version,
        "loaded_at": holder.current.loaded_at.isoformat(),
        "policies": sorted(shipped_ids()),
        "last_error": None,
    }


async def test_watch_reloads_on_change_and_stops_when_asked(folder: Path) -> None:
    holder = PolicyHolder(folder)
    before = holder.current.version
    stopping = asyncio.Event()
    task = asyncio.create_task(holder.watch(stopping, every_s=0.01))

    (folder / "extra.cedar").write_text(EXTRA, encoding="utf-8")
    for _ in range(500):
        if holder.current.version != before:
            break
        await asyncio.sleep(0.01)
    assert "sales-may-read-the-wiki" in holder.current.policies.policy_ids

    (folder / "extra.cedar").write_text(BROKEN, encoding="utf-8")
    for _ in range(500):
        if holder.last_error is not None:
            break
        await asyncio.sleep(0.01)
    assert holder.last_error is not None
    assert "sales-may-read-the-wiki" in holder.current.policies.policy_ids

    stopping.set()
    await asyncio.wait_for(task, timeout=5)


async def test_the_watcher_hook_watches_until_the_runtime_stops(folder: Path) -> None:
    class FakeRuntime:
        stopping = asyncio.Event()

    runtime = FakeRuntime()
    hook = PolicyHolder(folder).watcher(every_s=0.01)
    task = asyncio.create_task(hook(runtime))
    await asyncio.sleep(0.05)
    assert not task.done()

    runtime.stopping.set()
    await asyncio.wait_for(task, timeout=5)
