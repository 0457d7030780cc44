"""One child process whose lifetime is bound to ours."""

# Each child runs in its own process group: Ctrl-C in a terminal then reaches only us, and we
# stop the children in order (services drain and commit first, then PostgreSQL and the broker
# they use). Were they in our group, everything would get SIGINT at once and the services would
# lose their database and broker mid-shutdown.
#
# If we are killed with SIGKILL no cleanup runs at all; on Linux every child therefore asks the
# kernel (prctl PR_SET_PDEATHSIG) to send it its stop signal when its parent dies (the stop
# signal rather than always SIGTERM: SIGTERM makes PostgreSQL wait for its clients to leave,
# SIGINT is its fast shutdown). The kernel ties this to the *thread* that forked the child, which
# is the event loop thread: run the loop in the main thread (asyncio.run does), or the children
# die when the loop's thread ends.

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
_TAIL_BYTES = 64 * 1024


def _parent_death_hook(sig: int) -> Callable[[], None] | None:
    """Build a preexec_fn that makes the child receive `sig` when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved before fork so that the child does as little as possible between fork and exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def hook() -> None:
        if prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            # Popen re-raises this in the parent as a SubprocessError.
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent may have died before prctl ran; the signal would then never arrive.
        if os.getppid() != parent_pid:
            os._exit(127)

    return hook


def _credentials(user: str | None) -> dict[str, Any]:
    """Return the Popen keyword arguments that switch to `user`, if a switch is needed."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    if entry.pw_uid == os.geteuid():
        return {}
    # Drop root's supplementary groups too, not only the uid and primary gid.
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class ManagedProcess:
    """A child process with its output in a log file, stopped by signal and then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Describe the child (env None inherits ours, else replaces it); nothing runs yet."""
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.user = user
        self.cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self._log_offset = 0
        self._stop_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The child's process id, or None before start()."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status (negative signal number if killed), or None while running."""
        return None if self._proc is None else self._proc.returncode

    @property
    def running(self) -> bool:
        """Whether the child was started and has not exited yet."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Spawn the child; raise RuntimeError if it is already running."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        log: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_path.open("ab")
            # tail() only shows this run's output even though the file keeps earlier runs.
            self._log_offset = log.tell()
        output: IO[bytes] | int = log if log is not None else subprocess.DEVNULL
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=_parent_death_hook(self.stop_signal),
                process_group=0,
                **_credentials(self.user),
            )
        finally:
            # The child holds its own copy of the descriptor.
            if log is not None:
                log.close()

    async def wait(self) -> int:
        """Wait until the child exits and return its exit status."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return await self._proc.wait()

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the child if it still runs."""
        if self._proc is not None and self._proc.returncode is None:
            # It may exit between the check and the signal.
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    # A timeout parameter, not asyncio.timeout: it bounds the polite wait before SIGKILL.
    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Send the stop signal, wait up to `timeout` seconds, then SIGKILL; idempotent."""
        async with self._stop_lock:
            proc = self._proc
            if proc is None or proc.returncode is not None:
                return
            self.send_signal(self.stop_signal)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                self.send_signal(signal.SIGKILL)
                await proc.wait()

    def tail(self, lines: int = 20) -> str:
        """Return the last `lines` lines this run wrote to the log file ("" without a log)."""
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - _TAIL_BYTES))
                data = log.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])

    def describe_exit(self) -> str:
        """Explain how the child ended, with its log tail, for error messages."""
        status = "still running" if self.returncode is None else f"exit status {self.returncode}"
        where = f"log: {self.log_path}" if self.log_path else "no log file was configured"
        tail = self.tail()
        header = f"{self.name} ({status}; {where})"
        return f"{header}\n--- last log lines ---\n{tail}" if tail else header
