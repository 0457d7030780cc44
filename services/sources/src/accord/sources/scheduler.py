"""When sources run by themselves: on their cron schedule, or when a watched export changes.

A watched export runs once it has stopped changing for one poll (an HR job still writing the
file must not be read half-way: a half file looks like half the company leaving, which the
safety limit would hold, but it should not come to that). The service's start counts as a
change: a watched source runs once when the service starts, which publishes nothing if the
export is what the last run read. Schedules are cron lines in UTC.

Runs happen one at a time: a run holds every row of its source in memory, two large ones
side by side would double that. `Due` is pure (the loop gives it the time and the files'
signatures), so the rules are tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from croniter import croniter

from accord.sources.config import Source
from accord.sources.csv_reader import ExportError, newest_export
from accord.sources.runs import Trigger

log = logging.getLogger(__name__)

#: A file's identity for the watch: path, modification time (ns) and size.
Signature = tuple[str, int, int] | None
RunOne = Callable[[Source, Trigger], Awaitable[None]]


def next_time(schedule: str, after: datetime) -> datetime:
    """The first time the cron line fires after `after` (UTC)."""
    found: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return found.astimezone(UTC)


def signature(source: Source) -> Signature:
    """The watched export as it is now (blocking: it looks at the file system); None when
    there is no export to read."""
    assert source.csv is not None
    try:
        path = newest_export(source.csv.path, source.csv.pattern)
        info = path.stat()
    except (ExportError, OSError):
        return None
    return (str(path), info.st_mtime_ns, info.st_size)


@dataclass
class Due:
    """Which sources are due, from the clock and what the watched exports look like."""

    sources: Sequence[Source]
    started: datetime
    next_runs: dict[str, datetime] = field(default_factory=dict)
    seen: dict[str, Signature] = field(default_factory=dict)
    """The signature at the last poll (a run waits until two polls agree)."""
    ran: dict[str, Signature] = field(default_factory=dict)
    """The signature the last run read."""

    def __post_init__(self) -> None:
        for source in self.sources:
            if source.schedule is not None:
                self.next_runs[source.name] = next_time(source.schedule, self.started)

    def take(self, now: datetime, signatures: dict[str, Signature]) -> list[tuple[Source, Trigger]]:
        """The runs due now, in configuration order; marks them as started."""
        due: list[tuple[Source, Trigger]] = []
        for source in self.sources:
            name = source.name
            if name in self.next_runs and now >= self.next_runs[name]:
                self.next_runs[name] = next_time(source.schedule or "", now)
                due.append((source, "schedule"))
            elif source.watch:
                now_sig = signatures.get(name)
                stable = now_sig is not None and self.seen.get(name) == now_sig
                self.seen[name] = now_sig
                if stable and (name not in self.ran or self.ran[name] != now_sig):
                    self.ran[name] = now_sig
                    due.append((source, "watch"))
        return due

    def wait(self, now: datetime, poll: timedelta) -> float:
        """Seconds until the next look: the next schedule, one poll for watches, and at most
        a minute (a clock that jumps, a host that slept, are noticed soon)."""
        waits = [poll] if any(source.watch for source in self.sources) else [timedelta(minutes=1)]
        waits += [when - now for when in self.next_runs.values()]
        return max(0.0, min(waits).total_seconds())


async def schedule(
    sources: Sequence[Source],
    run_one: RunOne,
    stopping: asyncio.Event,
    *,
    poll_s: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Run the sources when they are due until `stopping` is set."""
    due = Due(sources, clock())
    watched = [source for source in sources if source.watch]
    poll = timedelta(seconds=poll_s)
    while not stopping.is_set():
        signatures = {source.name: await asyncio.to_thread(signature, source) for source in watched}
        for source, trigger in due.take(clock(), signatures):
            if stopping.is_set():
                return
            await run_one(source, trigger)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=due.wait(clock(), poll))
