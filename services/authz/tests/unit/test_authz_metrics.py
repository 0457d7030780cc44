"""Authz's decision metrics, driven through the real access flow and decision API on the
in-memory stores: each decision counted by source and outcome, each evaluation timed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest
from prometheus_client import generate_latest

from accord.authz import decision_api, handlers, metrics
from accord.authz.catalogue import load_catalogue
from accord.authz.decision_api import Question
from accord.authz.domain.approvals import ApprovalSettings
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.fakes import Memory
from accord.authz.handlers import access
from accord.events import (
    AccessRequested,
    Envelope,
    EventData,
    Resource,
    UserCreated,
    UserDeactivated,
    new_event,
)
from accord.runtime.metrics import RuntimeMetrics, unbounded_labels
from accord.runtime.routes import HandlerContext

POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
SETTINGS = ApprovalSettings(timeout=timedelta(hours=1), on_timeout="escalate")
CTX = cast(HandlerContext, object())
OUTCOMES = ("allow", "deny", "pending_approval", "error")


class Counted:
    """What the process-wide decision metrics gained since the test began."""

    def __init__(self) -> None:
        self.registry = metrics.registry()
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        found = {
            f"{source}/{outcome}": self._value(
                "accord_authz_decisions_total", source=source, outcome=outcome
            )
            for source in metrics.SOURCES
            for outcome in OUTCOMES
        }
        for source in metrics.SOURCES:
            found[f"{source}/timed"] = self._value(
                "accord_authz_decision_duration_seconds_count", source=source
            )
        return found

    def _value(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        assert value is not None, f"{name}{labels} is served from the start"
        return value

    def gained(self) -> dict[str, float]:
        now = self._now()
        return {key: now[key] - self.start[key] for key in now if now[key] != self.start[key]}


@pytest.fixture
def counted() -> Counted:
    return Counted()


async def consume(memory: Memory, data: EventData, sequence: int = 1) -> list[Envelope]:
    """Hand an event to its route, as the consumer does."""
    routes = handlers.routes(lambda ctx: memory.ports(lambda: (POLICIES, CATALOGUE), SETTINGS))
    event = new_event(data, source="urn:test", sequence=sequence)
    return list(await routes[event.type](event, CTX))


async def people(memory: Memory) -> None:
    """ada and bob report to mia, mia to the ceo; eve has left (inactive)."""
    for user_id, manager in (("ceo", None), ("mia", "ceo"), ("ada", "mia"), ("bob", "mia")):
        await consume(memory, UserCreated(user_id=user_id, user_name=user_id, manager_id=manager))
    await consume(memory, UserCreated(user_id="payroll-owner", user_name="payroll-owner"))
    await consume(memory, UserCreated(user_id="eve", user_name="eve"))
    await consume(memory, UserDeactivated(user_id="eve"), 2)


def request(principal: str, application: str, entitlement: str) -> AccessRequested:
    return AccessRequested(
        request_id=f"req-{application}-{entitlement}-{principal}",
        requester_id=principal,
        principal_id=principal,
        resource=Resource(application=application, entitlement=entitlement),
    )


def question(principal: str, entitlement: str, risk: str | None = None) -> Question:
    attrs = {"risk": risk} if risk else {}
    return Question.model_validate(
        {
            "principal": {"type": "User", "id": principal},
            "action": "request",
            "resource": {"type": "Entitlement", "id": entitlement},
            "entities": [{"type": "Entitlement", "id": entitlement, "attrs": attrs}],
        }
    )


# --- access requests ------------------------------------------------------------------------


async def test_access_requests_count_each_outcome_once(counted: Counted) -> None:
    memory = Memory()
    await people(memory)

    await consume(memory, request("ada", "wiki", "reader"))  # low risk: granted
    await consume(memory, request("bob", "payroll", "viewer"))  # manager, then owner
    await consume(memory, request("eve", "wiki", "reader"))  # inactive: denied
    await consume(memory, request("ceo", "payroll", "viewer"))  # no manager to approve
    await consume(memory, request("ada", "wiki", "reader"))  # redelivered: decided already

    assert counted.gained() == {
        "access_request/allow": 1,
        "access_request/pending_approval": 1,
        "access_request/deny": 2,
        "access_request/timed": 5,  # the redelivery was evaluated, not counted again
    }


async def test_a_request_that_waited_for_its_principal_is_counted_when_decided(
    counted: Counted,
) -> None:
    memory = Memory()
    await consume(memory, request("zed", "wiki", "reader"))
    assert counted.gained() == {}

    await consume(memory, UserCreated(user_id="zed", user_name="zed"))

    assert counted.gained() == {"access_request/allow": 1, "access_request/timed": 1}


async def test_an_evaluation_that_raises_counts_an_error(
    counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = Memory()
    await people(memory)

    def broken(*args: Any) -> Any:
        raise RuntimeError("the policy engine failed")

    monkeypatch.setattr(access, "outcome", broken)
    with pytest.raises(RuntimeError):
        await consume(memory, request("ada", "wiki", "reader"))

    assert counted.gained() == {"access_request/error": 1, "access_request/timed": 1}


# --- the decision API -----------------------------------------------------------------------


async def test_the_decision_api_counts_each_question_and_times_the_call(counted: Counted) -> None:
    memory = Memory()
    await people(memory)
    questions = [
        question("ada", "wiki/reader", "low"),
        question("ada", "wiki/unclassified"),
        question("eve", "wiki/reader", "low"),
        question("bob", "payroll/viewer"),
    ]

    answers = await decision_api.answer_on(memory.stores(), POLICIES, CATALOGUE, questions)

    assert [a.decision for a in answers] == ["permit", "deny", "deny", "approval_required"]
    assert counted.gained() == {
        "api/allow": 1,
        "api/deny": 2,
        "api/pending_approval": 1,
        "api/timed": 1,  # one evaluation for the batch
    }


async def test_a_decision_api_evaluation_that_raises_counts_its_questions_as_errors(
    counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("the policy engine failed")

    monkeypatch.setattr(decision_api, "_decide_all", broken)
    questions = [question("ada", "wiki/reader", "low"), question("bob", "wiki/reader", "low")]

    with pytest.raises(RuntimeError):
        await decision_api.answer_on(Memory().stores(), POLICIES, CATALOGUE, questions)

    assert counted.gained() == {"api/error": 2, "api/timed": 1}


# --- the page -------------------------------------------------------------------------------


async def test_the_page_serves_the_decision_metrics_with_bounded_labels() -> None:
    memory = Memory()
    await people(memory)
    await consume(memory, request("ada", "wiki", "reader"))
    await decision_api.answer_on(
        memory.stores(), POLICIES, CATALOGUE, [question("ada", "wiki/reader", "low")]
    )
    runtime, other = RuntimeMetrics(), RuntimeMetrics()
    runtime.include(metrics.registry())
    other.include(metrics.registry())  # a second authz in the process serves them too

    page = generate_latest(runtime.registry).decode()

    assert {"accord_authz_decisions", "accord_authz_decision_duration_seconds"} <= (
        runtime.metric_names() & other.metric_names()
    )
    assert 'accord_authz_decision_duration_seconds_bucket{le="0.0001",source="api"}' in page
    assert unbounded_labels(page) == []
