"""The machine a run measured: CPU, memory, Python, and the code's git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def describe(repository: Path) -> dict[str, Any]:
    """CPU model and count, RAM, OS, Python version and the commit (with a dirty flag)."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_gib": ram_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_commit": _git(repository, "rev-parse", "HEAD"),
        "git_dirty": bool(_git(repository, "status", "--porcelain", "--untracked-files=no")),
    }


def _git(repository: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, read-only git commands
            ["git", "-C", str(repository), *args],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
