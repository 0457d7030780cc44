"""Events replayed per second by `accord workflows simulate` (issue 22).

Generates a history of 10,000 identities and 50,000 identity events (joiners in four
departments with hire dates, department moves, hire dates moved, deactivations and
leavers) as the auditor's export would hold it, and replays it through the shipped example
workflows (active) and a draft whose pre-hire workflow's offset changed, with the
real matcher (MatchingPlanner): CEL scopes and conditions, timers planned and fired.
Reading the history is not timed (it comes from a file or the auditor's API).
Usage: python benchmarks/workflows_simulate.py [IDENTITIES] [EVENTS]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.workflows.simulate import HistoryEvent, diff, replay
from accord.orchestrator.workflows.simulate_cli import load_set
from accord.orchestrator.workflows.simulate_planner import MatchingPlanner

EXAMPLES = (
    Path(__file__).parents[1] / "services/orchestrator/src/accord/orchestrator/workflows/examples"
)
DEPARTMENTS = ("Sales", "Support", "Engineering", "Finance")
START = datetime(2026, 9, 1, tzinfo=UTC)


def generate(identities: int, events: int, seed: int = 22) -> list[HistoryEvent]:
    """One user.created per identity, then updates, deactivations and deletions."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible history, not a secret)
    span = timedelta(days=90).total_seconds()
    history: list[HistoryEvent] = []
    profiles: dict[str, dict[str, object]] = {}

    def add(kind: str, subject: str, payload: dict[str, object], at: datetime) -> None:
        history.append(
            HistoryEvent(len(history) + 1, f"e-{len(history) + 1}", kind, subject, at, payload)
        )

    for n in range(identities):
        subject = f"u{n:06d}"
        at = START + timedelta(seconds=rng.uniform(0, span / 2))
        hire = (at + timedelta(days=rng.randint(3, 60))).date()
        profiles[subject] = {
            "user_id": subject,
            "user_name": subject,
            "department": rng.choice(DEPARTMENTS),
            "employee_type": rng.choice(("employee", "employee", "contractor")),
            "hire_date": hire.isoformat(),
            "manager_id": "boss",
            "active": True,
            "attributes": {},
        }
        add("user.created", subject, dict(profiles[subject]), at)
    while len(history) < events:
        subject = f"u{rng.randrange(identities):06d}"
        at = START + timedelta(seconds=rng.uniform(span / 2, span))
        roll = rng.random()
        if roll < 0.6:
            profiles[subject]["department"] = rng.choice(DEPARTMENTS)
            add("user.updated", subject, dict(profiles[subject]), at)
        elif roll < 0.85:
            hire = date.fromisoformat(str(profiles[subject]["hire_date"]))
            profiles[subject]["hire_date"] = (hire + timedelta(days=rng.randint(1, 14))).isoformat()
            add("user.updated", subject, dict(profiles[subject]), at)
        elif roll < 0.95:
            add("user.deactivated", subject, {"user_id": subject}, at)
        else:
            add("user.deleted", subject, {"user_id": subject}, at)
    return history


def draft_folder(into: Path) -> Path:
    """The examples, with pre-hire firing 3 days before (not 7)."""
    into.mkdir(parents=True, exist_ok=True)
    for path in EXAMPLES.glob("*.yaml"):
        text = path.read_text()
        if path.stem == "pre-hire":
            text = text.replace("-P7D", "-P3D")
        (into / path.name).write_text(text)
    return into


def main() -> None:
    identities = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    history = generate(identities, events)
    with tempfile.TemporaryDirectory() as folder:
        active = load_set(EXAMPLES)
        draft = load_set(draft_folder(Path(folder) / "draft"))
    targets = everyone(["ad", "crm", "mail"]).targets_for
    started = time.perf_counter()
    outcome = replay(
        history,
        active=MatchingPlanner(active),
        draft=MatchingPlanner(draft),
        birthright_targets=targets,
        since=START,
        until=START + timedelta(days=150),
    )
    seconds = time.perf_counter() - started
    found = diff(outcome.active, outcome.draft)
    print(f"identities {identities:,}, events {len(history):,}")
    print(
        f"runs active {sum(outcome.active.runs.values()):,}, draft "
        f"{sum(outcome.draft.runs.values()):,}; timers fired active "
        f"{outcome.active.timers_fired:,}, draft {outcome.draft.timers_fired:,}; "
        f"workflows that differ: {', '.join(found.runs) or 'none'}"
    )
    print(f"replayed in {seconds:.2f} s: {len(history) / seconds:,.0f} events/s (two sets)")


if __name__ == "__main__":
    main()
