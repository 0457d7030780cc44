"""The policy set in force, reloaded when its files change; a bad edit never replaces it.

A :class:`PolicyHolder` loads the policy folder (``*.cedar``, the schema and
``catalogue.yaml``) into one immutable :class:`PolicySnapshot` and keeps it in
``current``. :meth:`PolicyHolder.reload` reads the folder again: a set that
compiles replaces the snapshot in one assignment, so a reader that took
``holder.current`` sees the policies and the catalogue of one version, never a
mix; a set that does not compile is refused, its ``path:line: reason`` is logged
and kept in ``last_error``, and the previous snapshot stays in force.
:meth:`PolicyHolder.watch` polls the folder's version (the sha256 of its files)
and reloads when it changes. Polling is portable: it works with editors that
replace files, and with Kubernetes ConfigMaps, which swap a symbolic link.

Wiring: read ``holder.current`` once per event or request (not at start-up), run
``holder.watcher(every_s)`` as a background task and call ``holder.reload()``
(and return ``holder.status()``) from a reload endpoint.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accord.authz.catalogue import Catalogue, CatalogueError, load_catalogue
from accord.authz.domain.policy_files import CATALOGUE_FILE, PolicyFiles, read_policy_files
from accord.authz.domain.policy_set import LoadedPolicies, PolicyError
from accord.runtime.folder_watch import DEFAULT_WATCH_INTERVAL_S, FolderWatching

__all__ = [
    "DEFAULT_WATCH_INTERVAL_S",
    "LoadError",
    "PolicyHolder",
    "PolicySnapshot",
    "load_snapshot",
]

log = logging.getLogger(__name__)

_READ_ATTEMPTS = 3

LoadError = (PolicyError, CatalogueError, NotADirectoryError)
"""What a policy folder that cannot be put in force raises; ``str()`` says where and why."""


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """One loaded version of the policy folder: policies and catalogue together.

    ``version`` is the sha256 (hex) of the folder's files, ``loaded_at`` when this
    snapshot was put in force (UTC).
    """

    policies: LoadedPolicies
    catalogue: Catalogue
    version: str
    loaded_at: datetime


def _load_catalogue(folder: Path) -> Catalogue:
    path = folder / CATALOGUE_FILE
    return load_catalogue(path) if path.exists() else Catalogue()


def _build(files: PolicyFiles) -> PolicySnapshot:
    policies = files.compile()
    catalogue = _load_catalogue(files.folder)
    return PolicySnapshot(policies, catalogue, files.version, datetime.now(UTC))


def _unchanged(files: PolicyFiles) -> bool:
    """Whether the folder still holds exactly ``files`` (it was not edited meanwhile)."""
    try:
        return read_policy_files(files.folder).version == files.version
    except LoadError:
        return False


def load_snapshot(folder: Path) -> PolicySnapshot:
    """Load the policy folder into a snapshot whose version matches what was loaded.

    The files are read again after loading; if they changed meanwhile (an edit or a
    ConfigMap swap in progress), loading starts over, a few times at most.

    :raises PolicyError: if a policy, the schema or a file is invalid (``path:line: reason``).
    :raises CatalogueError: if ``catalogue.yaml`` is invalid.
    :raises NotADirectoryError: if ``folder`` is not a directory.
    """
    for _ in range(_READ_ATTEMPTS):
        files = read_policy_files(folder)
        try:
            snapshot = _build(files)
        except LoadError:
            if _unchanged(files):
                raise
            continue
        if _unchanged(files):
            return snapshot
    raise PolicyError(str(folder), None, "the files kept changing while they were read")


class PolicyHolder(FolderWatching):
    """The policy snapshot in force, and the means to replace it safely.

    The constructor loads ``folder`` and raises the load's error if it is bad: a
    service must not start without a policy set. Afterwards a bad set is refused.
    """

    watched = "policy folder"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._current = load_snapshot(folder)
        self._seen = self._current.version
        self._last_error: str | None = None
        log.info(
            "policies loaded",
            extra={"version": self._current.version, "policies": self._policy_ids()},
        )

    @property
    def current(self) -> PolicySnapshot:
        """The snapshot in force (take it once per decision: it may be replaced)."""
        return self._current

    @property
    def last_error(self) -> str | None:
        """Why the last reload was refused (``path:line: reason``); None after a good one."""
        return self._last_error

    def _policy_ids(self) -> list[str]:
        return sorted(self._current.policies.policy_ids)

    def reload(self) -> bool:
        """Read the folder again and put it in force if it loads.

        Unchanged files keep the current snapshot (and its ``loaded_at``). A bad
        set is refused: the error is logged and kept in ``last_error``, and the
        previous snapshot stays in force.

        :returns: True if the folder's files are in force now, False if refused.
        """
        with self._lock:
            try:
                files = read_policy_files(self.folder)
                if files.version == self._current.version:
                    self._seen = files.version
                    self._last_error = None
                    return True
                snapshot = load_snapshot(self.folder)
            except LoadError as error:
                self._refuse(error)
                return False
            self._seen = snapshot.version
            self._put_in_force(snapshot)
            return True

    def _refuse(self, error: Exception) -> None:
        try:
            self._seen = read_policy_files(self.folder).version
        except LoadError:
            self._seen = ""
        self._last_error = str(error)
        log.error(
            "policy reload refused, version %s stays in force: %s",
            self._current.version[:12],
            error,
            extra={"version": self._current.version, "error": str(error)},
        )

    def _put_in_force(self, snapshot: PolicySnapshot) -> None:
        previous = self._current.version
        self._current = snapshot
        self._last_error = None
        log.info(
            "policies reloaded",
            extra={
                "version": snapshot.version,
                "previous": previous,
                "policies": self._policy_ids(),
            },
        )

    def changed(self) -> bool:
        """Whether the files differ from the last version loaded or refused."""
        try:
            return read_policy_files(self.folder).version != self._seen
        except LoadError:
            # A missing folder is reported once, by the reload it causes.
            return self._seen != ""

    def reload_if_changed(self) -> bool | None:
        """Reload if the files changed since last looked at.

        :returns: None if nothing changed, else what :meth:`reload` returned.
        """
        return self.reload() if self.changed() else None

    def status(self) -> dict[str, Any]:
        """The state for an API: version and time in force, policy ids, last error."""
        snapshot = self._current
        return {
            "version": snapshot.version,
            "loaded_at": snapshot.loaded_at.isoformat(),
            "policies": sorted(snapshot.policies.policy_ids),
            "last_error": self._last_error,
        }
