"""py-spy profiles of running services and their top frames.

`py-spy record --format raw` writes collapsed stacks: one line per distinct stack,
``outermost (file:line);...;innermost (file:line) SAMPLES``. Frames are grouped by function
and file (line numbers dropped). Self time charges a sample to the innermost frame;
inclusive time charges it once to every function on the stack.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")
_SITE = re.compile(r"^.*?/(site-packages|src|lib/python3\.\d+)/")
#: Innermost frames that mean "waiting": py-spy's idle detection is a heuristic, more so with
#: --nonblocking, and an event loop parked in epoll still shows up.
_WAITING = re.compile(
    r"^(EpollSelector\.select|Condition\.wait|Event\.wait|Thread\._wait_for_tstate_lock"
    r"|SimpleQueue\.get|Queue\.get|_worker) "
)


def py_spy() -> str | None:
    """The py-spy executable next to our interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


async def record(pid: int, seconds: int, output: Path, rate: int = 100) -> str | None:
    """Sample a process for `seconds`; returns an error text, or None when the file is written."""
    executable = py_spy()
    if executable is None:
        return "py-spy is not installed"
    process = await asyncio.create_subprocess_exec(
        executable,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",  # do not stop the service at every sample
        "--output",
        str(output),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    if process.returncode != 0 or not await asyncio.to_thread(output.exists):
        return f"py-spy exited {process.returncode}: {out.decode(errors='replace')[-500:]}"
    return None


def frame_name(frame: str) -> str:
    """`function (short/path.py)`: line numbers dropped, install prefixes trimmed."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['function']} ({_SITE.sub('', match['file'])})"


@dataclass
class Top:
    """The busiest frames of one profile."""

    samples: int
    waiting: int
    """Samples whose innermost frame is a wait (epoll, a condition): not work."""
    own: list[tuple[str, int]]
    """By self samples, waits left out."""
    inclusive: list[tuple[str, int]]
    """By inclusive samples, waits left out."""

    @property
    def busy(self) -> int:
        """Samples doing work."""
        return self.samples - self.waiting


def top_frames(raw: str, limit: int = 25) -> Top:
    """The top frames of collapsed stacks, by self and by inclusive samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = waiting = 0
    for line in raw.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        frames = [frame_name(f) for f in match["stack"].split(";") if f]
        if not frames:
            continue
        samples += count
        if _WAITING.match(frames[-1]):
            waiting += count
            continue
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return Top(samples, waiting, own.most_common(limit), inclusive.most_common(limit))


def write_top(raw_file: Path, top_file: Path, service: str, limit: int = 25) -> dict[str, object]:
    """Write the top frames as text next to the raw profile; returns them for results.json."""
    top = top_frames(raw_file.read_text(), limit)
    lines = [
        f"{service}: {top.samples} samples from {raw_file.name} (py-spy --nonblocking, 100 Hz);"
        f" {top.waiting} of them wait in epoll or a lock and are left out;"
        f" % below are of the {top.busy} busy samples",
        "",
    ]
    for title, rows in (("by self time", top.own), ("by inclusive time", top.inclusive)):
        lines.append(f"top {limit} {title}:")
        lines.append(f"{'%':>6} {'samples':>8}  frame")
        for name, count in rows:
            share = 100 * count / top.busy if top.busy else 0.0
            lines.append(f"{share:6.1f} {count:8d}  {name}")
        lines.append("")
    top_file.write_text("\n".join(lines))
    return {
        "samples": top.samples,
        "waiting": top.waiting,
        "busy": top.busy,
        "self": [{"frame": n, "samples": c} for n, c in top.own],
        "inclusive": [{"frame": n, "samples": c} for n, c in top.inclusive],
    }
