"""Start-up time of the `accord` command: wall time of whole runs, as a script sees it.

A CLI used in scripts must answer `--help` and simple commands at once (issue 24): the
parser registers every installed command with light imports, and a command imports what it
needs when it runs. Each command below runs as a subprocess ``--repeats`` (7) times after a
warm-up run; the median is printed (and returned by ``measure``, for other benchmarks).

Usage::

    uv run --frozen python benchmarks/cli_startup.py [--repeats 7] [--accord PATH]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: The runs measured: the top-level help, the help of commands from three packages, and
#: `accord events`, a real command that loads the event catalogue.
COMMANDS: dict[str, list[str]] = {
    "accord --help": ["--help"],
    "accord events --help": ["events", "--help"],
    "accord sources --help": ["sources", "--help"],
    "accord dlq --help": ["dlq", "--help"],
    "accord events": ["events"],
}


def default_accord() -> Path:
    """The console script of this interpreter's environment."""
    return Path(sys.executable).parent / "accord"


def _once(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - the accord program, fixed arguments
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def measure(repeats: int = 7, accord: Path | None = None) -> dict[str, float]:
    """Median wall time in seconds of each of COMMANDS, over `repeats` runs each."""
    program = str(accord or default_accord())
    medians: dict[str, float] = {}
    for label, arguments in COMMANDS.items():
        command = [program, *arguments]
        _once(command)  # warm-up: the file system cache, compiled bytecode
        medians[label] = statistics.median(_once(command) for _ in range(repeats))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per command (7)")
    parser.add_argument(
        "--accord", type=Path, help="the accord program (default: this environment's)"
    )
    args = parser.parse_args()
    medians = measure(args.repeats, args.accord)
    width = max(len(label) for label in medians)
    print(f"{'command':<{width}}  median of {args.repeats} (s)")
    for label, seconds in medians.items():
        print(f"{label:<{width}}  {seconds:>8.3f}")


if __name__ == "__main__":
    main()
