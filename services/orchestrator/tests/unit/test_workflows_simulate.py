"""`accord workflows simulate`: recorded identity history replayed through an active and a
draft workflow set, the difference asserted against a hand-computed expectation."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from accord.events.catalogue import Profile
from accord.orchestrator.workflows.definitions import DateTrigger, EventTrigger
from accord.orchestrator.workflows.expressions import compile_condition, identity_context
from accord.orchestrator.workflows.loader import Checks, WorkflowSet, load_files
from accord.orchestrator.workflows.simulate import (
    AccountOp,
    Approval,
    Change,
    HistoryEvent,
    Planner,
    RunKey,
    diff,
    read_api,
    read_export,
    replay,
)
from accord.orchestrator.workflows.simulate_cli import add_simulate, http_fetch, report_text
from accord.orchestrator.workflows.simulate_planner import MatchingPlanner
from accord.orchestrator.workflows.timers import Timer, TimeTrigger

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)

JOINER = """
id: joiner
category: joiner
description: Sales joiners get their accounts, the manager approves.
trigger: {{event: user.created}}
scope: {scope}
tasks:
  - {{id: accounts, task: create_accounts}}
  - {{id: approve, task: approval, approvers: manager, timeout: P7D}}
"""
MOVER = """
id: mover
category: mover
description: A department move updates the CRM account.
trigger: {event: user.updated, changed: [department]}
tasks:
  - {id: update, task: update_accounts, targets: [crm]}
"""
LEAVER = """
id: leaver
category: leaver
description: Disable everything, delete the CRM account.
trigger: {event: user.deleted}
tasks:
  - {id: disable, task: disable_accounts}
  - {id: delete, task: delete_accounts, targets: [crm]}
"""
PRE_HIRE = """
id: pre-hire
category: joiner
description: The directory account a week before the first day.
trigger: {at: hire_date, offset: -P7D}
tasks:
  - {id: directory, task: create_accounts, targets: [ad], disabled: true}
"""


def load(scope: str) -> WorkflowSet:
    files = {
        "joiner.yaml": JOINER.format(scope=scope),
        "mover.yaml": MOVER,
        "leaver.yaml": LEAVER,
        "pre-hire.yaml": PRE_HIRE,
    }
    return load_files(files, Checks(expression=lambda text: None))


ACTIVE = 'identity.department == "Sales"'
DRAFT = 'identity.department in ["Sales", "Support"]'


def birthright(profile: Profile) -> list[str]:
    """Sales: crm and ad; Support: helpdesk and ad; anyone else: ad."""
    extra = {"Sales": ["crm"], "Support": ["helpdesk"]}.get(profile.department or "", [])
    return sorted(["ad", *extra])


# A hand-written planner: the test's own reading of the rules, so the replay is tested on
# its own (MatchingPlanner, the real binding, is run through the same history below).


@dataclass(frozen=True)
class FakeTask:
    task_id: str
    kind: str
    would_run: bool | None


@dataclass(frozen=True)
class FakeRun:
    workflow_id: str
    identity_id: str
    tasks: Sequence[FakeTask]


class FakePlanner:
    def __init__(self, workflows: WorkflowSet) -> None:
        self.workflows = workflows

    def _run(self, loaded: Any, identity_id: str, identity: Mapping[str, Any]) -> list[FakeRun]:
        scope = loaded.definition.scope
        context = identity_context(identity, now=SINCE)
        if scope is not None and not compile_condition(scope).holds(context):
            return []
        tasks = [FakeTask(t.id, t.task, True) for t in loaded.definition.tasks]
        return [FakeRun(loaded.id, identity_id, tasks)]

    def runs_for(self, change: Change) -> list[FakeRun]:
        runs: list[FakeRun] = []
        for loaded in self.workflows.enabled():
            trigger = loaded.definition.trigger
            if not isinstance(trigger, EventTrigger) or trigger.event != change.event_type:
                continue
            if trigger.changed and not set(trigger.changed) & change.changed:
                continue
            assert change.after is not None
            runs += self._run(loaded, change.identity_id, change.after)
        return runs

    def time_triggers(self) -> list[TimeTrigger]:
        return [
            TimeTrigger(
                w.id, w.version, w.definition.trigger.at, w.definition.trigger.offset, "UTC"
            )
            for w in self.workflows.enabled()
            if isinstance(w.definition.trigger, DateTrigger)
        ]

    def runs_for_timer(
        self, timer: Timer, identity: Mapping[str, Any], now: datetime
    ) -> list[FakeRun]:
        return self._run(self.workflows[timer.key.workflow_id], timer.key.identity_id, identity)

    def task(self, workflow_id: str, task_id: str) -> Any:
        return next(t for t in self.workflows[workflow_id].definition.tasks if t.id == task_id)


PLANNERS: dict[str, Callable[[WorkflowSet], Planner]] = {
    "fake": FakePlanner,
    "matching": MatchingPlanner,
}

# The history --------------------------------------------------------------------------------


def record(
    record_id: int, when: str, event_type: str, subject: str, **profile: Any
) -> dict[str, Any]:
    """An audit record as the auditor's export writes it."""
    payload: dict[str, Any] = {"user_id": subject}
    if event_type in ("user.created", "user.updated"):
        payload |= {"user_name": subject, "active": True, "attributes": {}} | profile
    else:
        payload["reason"] = None
    return {
        "record_id": record_id,
        "occurred_at": when,
        "recorded_at": when,
        "event_type": event_type,
        "outcome": "info",
        "actor": "hr",
        "subject": subject,
        "target": None,
        "correlation_id": f"c-{record_id}",
        "trace_id": None,
        "source_topic": event_type,
        "source_event_id": f"e-{record_id}",
        "hash": "x",
        "payload": payload,
    }


HISTORY = [
    # Before the window: state only.
    record(1, "2026-10-20T09:00:00+00:00", "user.created", "olga", department="Sales"),
    # A Sales joiner: both sets.
    record(2, "2026-11-02T09:00:00+00:00", "user.created", "alice", department="Sales"),
    # A Support joiner: only the draft's wider scope.
    record(3, "2026-11-03T09:00:00+00:00", "user.created", "bob", department="Support"),
    # Engineering, with a hire date: the pre-hire timer (2026-11-13), no joiner.
    record(
        4,
        "2026-11-05T09:00:00+00:00",
        "user.created",
        "carol",
        department="Engineering",
        hire_date="2026-11-20",
    ),
    # A mover (Sales -> Support): both sets.
    record(5, "2026-11-06T09:00:00+00:00", "user.updated", "olga", department="Support"),
    # Carol's hire date moved later: the 2026-11-13 timer is cancelled, 2026-11-23 fires.
    record(
        6,
        "2026-11-08T09:00:00+00:00",
        "user.updated",
        "carol",
        department="Engineering",
        hire_date="2026-11-30",
    ),
    # A leaver: both sets.
    record(7, "2026-11-10T09:00:00+00:00", "user.deleted", "alice"),
    # A Support joiner whose pre-hire timer (2026-12-13) is after the window.
    record(
        8,
        "2026-11-12T09:00:00+00:00",
        "user.created",
        "erin",
        department="Support",
        hire_date="2026-12-20",
    ),
    # Not an identity event: ignored.
    {**record(9, "2026-11-12T10:00:00+00:00", "user.created", "x"), "event_type": "saga.started"},
]


def history() -> list[HistoryEvent]:
    return list(read_export(json.dumps(r) + "\n" for r in HISTORY))


@pytest.fixture(params=sorted(PLANNERS))
def planner_for(request: pytest.FixtureRequest) -> Callable[[WorkflowSet], Planner]:
    return PLANNERS[request.param]


def test_a_widened_scope_gives_exactly_the_hand_computed_difference(
    planner_for: Callable[[WorkflowSet], Planner],
) -> None:
    outcome = replay(
        history(),
        active=planner_for(load(ACTIVE)),
        draft=planner_for(load(DRAFT)),
        birthright_targets=birthright,
        since=SINCE,
        until=UNTIL,
    )
    found = diff(outcome.active, outcome.draft)

    assert (outcome.events, outcome.warm_up, outcome.identities) == (7, 1, 5)
    assert list(found.runs) == ["joiner"]
    joiner = found.runs["joiner"]
    assert (joiner.active, joiner.draft) == (1, 3)
    assert joiner.added == [
        RunKey("joiner", "bob", "e-3", "2026-11-03T09:00:00+00:00"),
        RunKey("joiner", "erin", "e-8", "2026-11-12T09:00:00+00:00"),
    ]
    assert joiner.removed == []
    assert found.tasks == {"joiner": {"approval": (1, 3), "create_accounts": (1, 3)}}
    assert found.accounts == {
        "ad": {"create": {"added": ["bob", "erin"], "removed": []}},
        "helpdesk": {"create": {"added": ["bob", "erin"], "removed": []}},
    }
    assert found.approvals_added == [
        Approval("joiner", "approve", "bob", "manager"),
        Approval("joiner", "approve", "erin", "manager"),
    ]
    assert found.approvals_removed == []
    assert not found.empty


def test_each_set_replays_movers_leavers_and_a_moved_hire_date(
    planner_for: Callable[[WorkflowSet], Planner],
) -> None:
    outcome = replay(
        history(),
        active=planner_for(load(ACTIVE)),
        draft=planner_for(load(ACTIVE)),
        birthright_targets=birthright,
        since=SINCE,
        until=UNTIL,
    )
    active = outcome.active
    assert sorted(active.runs) == [
        RunKey("joiner", "alice", "e-2", "2026-11-02T09:00:00+00:00"),
        RunKey("leaver", "alice", "e-7", "2026-11-10T09:00:00+00:00"),
        RunKey("mover", "olga", "e-5", "2026-11-06T09:00:00+00:00"),
        # Only the moved date's timer fires: 2026-11-30 - 7 days; the 11-13 one was
        # cancelled; erin's (12-13) is after the window.
        RunKey("pre-hire", "carol", "hire_date 2026-11-30", "2026-11-23T00:00:00+00:00"),
    ]
    assert active.timers_fired == 1
    assert sorted(active.accounts) == [
        AccountOp("ad", "create", "alice"),
        AccountOp("ad", "create", "carol"),
        AccountOp("ad", "disable", "alice"),
        AccountOp("crm", "create", "alice"),
        AccountOp("crm", "delete", "alice"),
        AccountOp("crm", "disable", "alice"),
    ]
    assert active.tasks[("mover", "update_accounts")] == 1
    assert diff(outcome.active, outcome.draft).empty


def test_redacted_fields_are_named_and_unseen_identities_reported() -> None:
    records = [
        record(1, "2026-11-02T09:00:00+00:00", "user.created", "alice", department="[redacted]"),
        record(2, "2026-11-03T09:00:00+00:00", "user.updated", "zoe", department="Sales"),
        record(3, "2026-11-04T09:00:00+00:00", "user.deleted", "yann"),
    ]
    outcome = replay(
        read_export(json.dumps(r) for r in records),
        active=FakePlanner(load(ACTIVE)),
        draft=FakePlanner(load(DRAFT)),
        birthright_targets=birthright,
        since=SINCE,
        until=UNTIL,
    )
    assert outcome.redacted == {"department": 1}
    # alice's department is unknown: out of both scopes. zoe and yann have no earlier state.
    assert not outcome.active.runs
    assert not outcome.draft.runs
    assert outcome.no_baseline == ["e-2", "e-3"]


def test_the_export_reader_names_a_bad_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        list(read_export([json.dumps(HISTORY[0]), "not json"]))


class _FakeAuditor(BaseHTTPRequestHandler):
    """GET /v1/audit/events as the auditor answers it: one type, pages of `limit`."""

    records: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.seen.append(query | {"auth": [self.headers["Authorization"]]})
        if url.path != "/v1/audit/events" or self.headers["Authorization"] != "Bearer t0k":
            self.send_response(401)
            self.end_headers()
            return
        after, limit = int(query.get("after", ["0"])[0]), int(query["limit"][0])
        items = [
            r
            for r in self.records
            if r["event_type"] == query["type"][0]
            and r["record_id"] > after
            and query["since"][0] <= r["occurred_at"] < query["until"][0]
        ][:limit]
        body = {
            "items": items,
            "next_after": items[-1]["record_id"] if len(items) == limit else None,
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def auditor() -> Iterator[str]:
    _FakeAuditor.records = HISTORY
    _FakeAuditor.seen = []
    server = HTTPServer(("127.0.0.1", 0), _FakeAuditor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_api_reader_pages_through_each_identity_type_in_log_order(auditor: str) -> None:
    found = read_api(
        http_fetch(auditor, "t0k"),
        since=datetime(2026, 10, 1, tzinfo=UTC),
        until=UNTIL,
        page_size=2,
    )
    assert [e.record_id for e in found] == [1, 2, 3, 4, 5, 6, 7, 8]
    # user.created has 5 records: pages of 2 need 3 requests (the last one short).
    created = [q for q in _FakeAuditor.seen if q["type"] == ["user.created"]]
    assert [q.get("after") for q in created] == [None, ["2"], ["4"]]


def test_the_command_reports_the_difference_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, scope in (("active", ACTIVE), ("draft", DRAFT)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "joiner.yaml").write_text(JOINER.format(scope=scope))
    events = tmp_path / "audit.ndjson"
    events.write_text("".join(json.dumps(r) + "\n" for r in HISTORY))
    monkeypatch.setenv("ACCORD_WORKFLOWS_DIR", str(tmp_path / "active"))
    monkeypatch.setenv("ACCORD_BIRTHRIGHT_TARGETS", "ad")
    monkeypatch.delenv("ACCORD_BIRTHRIGHT_FILE", raising=False)
    parser = argparse.ArgumentParser()
    add_simulate(parser.add_subparsers())
    args = parser.parse_args(
        [
            "simulate",
            "--since",
            SINCE.isoformat(),
            "--until",
            UNTIL.isoformat(),
            "--dir",
            str(tmp_path / "draft"),
            "--events",
            str(events),
            "--json",
        ]
    )
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    # The shipped sagas run alike in both sets (four joiners, a mover, a leaver).
    sagas = {"accord-joiner": 4, "accord-leaver": 1, "accord-mover": 1}
    assert report["runs"] == {"active": {"joiner": 1, **sagas}, "draft": {"joiner": 3, **sagas}}
    assert report["diff"]["accounts"] == {
        "ad": {"create": {"added": ["bob", "erin"], "removed": []}}
    }
    assert [a["identity_id"] for a in report["diff"]["approvals"]["added"]] == ["bob", "erin"]
    assert "events/s" in err


def test_the_text_report_lists_what_only_the_draft_does() -> None:
    outcome = replay(
        history(),
        active=FakePlanner(load(ACTIVE)),
        draft=FakePlanner(load(DRAFT)),
        birthright_targets=birthright,
        since=SINCE,
        until=UNTIL,
    )
    text = report_text(outcome, diff(outcome.active, outcome.draft), {"since": "s", "until": "u"})
    assert "* joiner: 1 -> 3" in text
    assert "      + bob (e-3, 2026-11-03T09:00:00+00:00)" in text
    assert "  + helpdesk create: bob, erin" in text
    assert "  + joiner.approve for erin (manager)" in text
    assert "    mover: 1 -> 1" in text
