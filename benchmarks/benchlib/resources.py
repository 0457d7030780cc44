"""CPU time and memory of the platform's processes, read from /proc (Linux).

CPU of a process counts its own time (every thread's: a JVM's compiler and collector threads
included), the time of the children it has reaped and the time of its live descendants, so
PostgreSQL's backends that come and go are all charged to the postmaster. Peak memory is
VmHWM (the kernel's high-water mark of resident memory) of the process, or of its largest
live descendant if that is larger (a launcher script that runs a JVM); for PostgreSQL, whose
backends share memory, it is the largest sum of proportional set sizes (Pss) seen by a
sampler, as summing resident sizes would count shared buffers once per backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process, its reaped children and live descendants."""
    total = _own_and_reaped(pid)
    for child in _descendants(pid):
        total += _own_and_reaped(child)
    return total


def own_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process alone (all its threads), without any children."""
    ticks = _ticks(pid)
    return (ticks[0] + ticks[1]) / _TICK


def _own_and_reaped(pid: int) -> float:
    return sum(_ticks(pid)) / _TICK


def _ticks(pid: int) -> tuple[int, int, int, int]:
    """utime, stime, cutime, cstime in clock ticks (zeros if the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return (0, 0, 0, 0)
    # Fields after the command name (which may hold spaces) start at the state, field 3.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return utime, stime, cutime, cstime


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children_files = Path(f"/proc/{parent}/task").glob("*/children")
        for children in children_files:
            with contextlib.suppress(OSError):
                kids = [int(x) for x in children.read_text().split()]
                found += kids
                frontier += kids
    return found


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM of one process in MiB (None if it is gone)."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib / 1024


def largest_peak_rss_mib(pid: int) -> float | None:
    """The largest VmHWM of a process and its live descendants, in MiB (None if it is gone)."""
    peaks = [mib for one in [pid, *_descendants(pid)] if (mib := peak_rss_mib(one)) is not None]
    return max(peaks) if peaks else None


def command_name(pid: int) -> str | None:
    """The process's command name (/proc/PID/comm: "java" for a JVM), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def tree_pss_mib(pid: int) -> float:
    """The sum of Pss over a process and its live descendants, in MiB."""
    total = 0
    for one in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{one}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total / 1024


@dataclass
class Watched:
    """The processes measured, by label: label -> pid (services, broker, postgres, ...)."""

    pids: dict[str, int]
    tree_memory: set[str] = field(default_factory=set)
    """Labels measured as a tree by Pss (PostgreSQL) rather than by VmHWM."""
    own_only: set[str] = field(default_factory=set)
    """Labels whose CPU and memory exclude their children (the benchmark: the platform is its
    child)."""
    peak_tree_mib: dict[str, float] = field(default_factory=dict)
    _sampler: asyncio.Task[None] | None = None

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each process so far."""
        return {
            label: own_cpu_seconds(pid) if label in self.own_only else cpu_seconds(pid)
            for label, pid in self.pids.items()
        }

    def peak_memory(self) -> dict[str, float | None]:
        """Peak memory per label in MiB (VmHWM, or the sampled Pss peak for trees)."""
        peaks: dict[str, float | None] = {}
        for label, pid in self.pids.items():
            if label in self.tree_memory:
                peaks[label] = round(self.peak_tree_mib.get(label, 0.0), 1)
            else:
                own = label in self.own_only  # the driver: the platform is its child
                rss = peak_rss_mib(pid) if own else largest_peak_rss_mib(pid)
                peaks[label] = None if rss is None else round(rss, 1)
        return peaks

    def add(self, label: str, pid: int) -> None:
        """Watch one more process from now on."""
        self.pids[label] = pid

    def forget(self, label: str) -> None:
        """Stop watching a process (gone: its pid may be reused by another)."""
        self.pids.pop(label, None)

    def start_sampling(self, every_s: float = 1.0) -> None:
        """Sample the trees' Pss in the background (the only memory figure read by polling)."""

        async def sample() -> None:
            while True:
                for label in self.tree_memory:
                    pss = await asyncio.to_thread(tree_pss_mib, self.pids[label])
                    self.peak_tree_mib[label] = max(self.peak_tree_mib.get(label, 0.0), pss)
                await asyncio.sleep(every_s)

        self._sampler = asyncio.create_task(sample())

    async def stop_sampling(self) -> None:
        """Stop the background sampler."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler


def higher_peaks(*readings: dict[str, float | None]) -> dict[str, float | None]:
    """Peak memory per label over several readings (a process replaced or stopped between
    them keeps the peak it had)."""
    peaks: dict[str, float | None] = {}
    for reading in readings:
        for label, mib in reading.items():
            known = peaks.get(label)
            peaks[label] = mib if known is None else known if mib is None else max(known, mib)
    return peaks


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds spent between two readings, per label (labels added since count from 0)."""
    return {label: after[label] - before.get(label, 0.0) for label in after}
