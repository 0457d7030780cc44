"""The workflow set in force, reloaded when its files change; a bad edit never replaces it.

Mirrors authz's policy holder (``accord.authz.policy_holder``): :class:`WorkflowHolder`
loads the folder into one immutable :class:`WorkflowSet` and keeps it. :meth:`reload`
reads the folder again: a set that loads replaces the current one in one assignment, so
a reader that took ``holder.current()`` sees one version of every workflow, never a mix;
a set that does not load is refused, its ``file:line: reason`` errors are logged and kept
in ``last_errors``, and the previous set stays in force. Change detection compares the
sha256 of the files' content (:func:`files_digest`), so an unchanged folder is not
parsed again, and polling works with editors that replace files and with Kubernetes
ConfigMaps, which swap a symbolic link.

Runs keep the version they started with (the engine stores it), so replacing the set
never changes a run in flight.

Wiring: read ``holder.current()`` once per event or timer, run ``holder.watcher(every_s)``
as a background task and call ``holder.reload()`` (and return ``holder.status()``) from
a reload endpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accord.orchestrator.workflows.loader import (
    Checks,
    WorkflowError,
    WorkflowErrors,
    WorkflowSet,
    files_digest,
    load_files,
    read_folder,
)
from accord.orchestrator.workflows.shipped import with_shipped
from accord.runtime.folder_watch import DEFAULT_WATCH_INTERVAL_S, FolderWatching

__all__ = ["DEFAULT_WATCH_INTERVAL_S", "WorkflowHolder", "load_consistent"]

log = logging.getLogger(__name__)

_READ_ATTEMPTS = 3


def _digest(folder: Path) -> str:
    """The folder's content digest; "" when it cannot be read (reported by the reload)."""
    try:
        return files_digest(read_folder(folder))
    except WorkflowErrors:
        return ""


def load_consistent(folder: Path, checks: Checks) -> WorkflowSet:
    """Load ``folder`` into a set whose digest matches the files as they are now, over
    the shipped workflows (:func:`~accord.orchestrator.workflows.shipped.with_shipped`).

    The files are read again after loading; if they changed meanwhile (an edit or a
    ConfigMap swap in progress), loading starts over, a few times at most.

    :raises WorkflowErrors: if the folder does not load.
    """
    for _ in range(_READ_ATTEMPTS):
        files = read_folder(folder)
        try:
            loaded = load_files(files, checks)
        except WorkflowErrors:
            if _digest(folder) == files_digest(files):
                raise
            continue
        if _digest(folder) == loaded.digest:
            return with_shipped(loaded)
    raise WorkflowErrors(
        [WorkflowError(str(folder), 0, "the files kept changing while they were read")]
    )


class WorkflowHolder(FolderWatching):
    """The workflow set in force, and the means to replace it safely.

    The constructor loads ``folder`` and raises :class:`WorkflowErrors` if it is bad:
    a service must not start on a broken set. Afterwards a bad set is refused.
    ``checks`` is called afresh for each load when it is a callable, so known targets,
    entitlements and templates can follow the platform's configuration.
    """

    watched = "workflow folder"

    def __init__(self, folder: Path, checks: Checks | Callable[[], Checks]) -> None:
        self.folder = folder
        self._checks = checks
        self._lock = threading.Lock()
        self._current = load_consistent(folder, self._checks_now())
        self._loaded_at = datetime.now(UTC)
        self._seen = self._current.digest
        self._last_errors: tuple[WorkflowError, ...] = ()
        log.info("workflows loaded", extra={"workflows": self._current.versions()})

    def _checks_now(self) -> Checks:
        return self._checks if isinstance(self._checks, Checks) else self._checks()

    def current(self) -> WorkflowSet:
        """The set in force (take it once per decision: it may be replaced)."""
        return self._current

    @property
    def last_errors(self) -> tuple[WorkflowError, ...]:
        """Why the last reload was refused; empty after a good one."""
        return self._last_errors

    def reload(self) -> tuple[WorkflowError, ...]:
        """Read the folder again and put it in force if it loads.

        Unchanged files keep the current set (nothing is parsed). A bad set is refused:
        the errors are logged and kept in ``last_errors``, the previous set stays.

        :returns: the errors (empty if the folder's files are in force now).
        """
        with self._lock:
            try:
                digest = files_digest(read_folder(self.folder))
                if digest == self._current.digest:
                    self._seen = digest
                    self._last_errors = ()
                    return ()
                loaded = load_consistent(self.folder, self._checks_now())
            except WorkflowErrors as error:
                self._refuse(error)
                return self._last_errors
            self._seen = loaded.digest
            self._put_in_force(loaded)
            return ()

    def _refuse(self, error: WorkflowErrors) -> None:
        self._seen = _digest(self.folder)
        self._last_errors = tuple(error.errors)
        log.error(
            "workflow reload refused, the previous set stays in force:\n%s",
            error,
            extra={"errors": [str(item) for item in error.errors]},
        )

    def _put_in_force(self, loaded: WorkflowSet) -> None:
        previous = self._current.versions()
        self._current = loaded
        self._loaded_at = datetime.now(UTC)
        self._last_errors = ()
        log.info(
            "workflows reloaded",
            extra={"workflows": loaded.versions(), "previous": previous},
        )

    def changed(self) -> bool:
        """Whether the files differ from the last content loaded or refused."""
        # A missing folder reads as "": reported once, by the reload it causes.
        return _digest(self.folder) != self._seen

    def reload_if_changed(self) -> tuple[WorkflowError, ...] | None:
        """Reload if the files changed since last looked at.

        :returns: None if nothing changed, else what :meth:`reload` returned.
        """
        return self.reload() if self.changed() else None

    def status(self) -> dict[str, Any]:
        """The state for an API: workflow versions, when loaded, the last refusal's errors."""
        return {
            "digest": self._current.digest,
            "loaded_at": self._loaded_at.isoformat(),
            "workflows": self._current.versions(),
            "last_errors": [str(error) for error in self._last_errors],
        }
