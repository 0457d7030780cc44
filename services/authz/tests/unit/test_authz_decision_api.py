"""The decision API's grouping: questions about one principal share one entity set."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from accord.authz import decision_api
from accord.authz.catalogue import load_catalogue
from accord.authz.decision_api import Answer, EntityIn, Question, StageAnswer
from accord.authz.domain import PolicySource, compile_policies
from accord.authz.domain.model import Entity, EntityRef
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir

POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
ADA = EntityRef("User", "ada")
KNOWN = {ADA: [Entity(ADA, {"active": True})]}


def ask(entitlement: str, risk: str | None, **extra: Any) -> Question:
    attrs = {"risk": risk} if risk else {}
    return Question.model_validate(
        {
            "principal": {"type": "User", "id": extra.pop("principal", "ada")},
            "action": "request",
            "resource": {"type": "Entitlement", "id": entitlement},
            "entities": [{"type": "Entitlement", "id": entitlement, "attrs": attrs}],
            **extra,
        }
    )


def test_a_batch_answers_in_order_with_one_engine_call_per_principal(monkeypatch: Any) -> None:
    calls: list[int] = []
    real = decision_api.decide_batch

    def counting(policies: Any, queries: Any, entities: Any) -> Any:
        calls.append(len(queries))
        return real(policies, queries, entities)

    monkeypatch.setattr(decision_api, "decide_batch", counting)
    questions = [
        ask("wiki/reader", "low"),
        ask("wiki/unclassified", None),
        ask("wiki/reader", "low", principal="eve"),
        ask("wiki/editor", "low"),
    ]

    decisions = decision_api._decide_all(POLICIES, questions, KNOWN, CATALOGUE)

    assert [(d.effect, d.reasons) for d in decisions] == [
        ("permit", ("low-risk-self-service",)),
        ("deny", ("no policy permits",)),
        ("deny", ("inactive-users-get-nothing",)),
        ("permit", ("low-risk-self-service",)),
    ]
    assert calls == [3]  # ada's three together; eve's one alone


def test_an_entity_given_twice_differently_is_decided_question_by_question() -> None:
    in_x = compile_policies(
        [
            PolicySource(
                "x.cedar",
                '@id("in-x") permit (principal, action, resource)'
                ' when { principal in Group::"x" };',
            )
        ],
        None,
    )
    known = {ADA: [Entity(ADA, {}, (EntityRef("Group", "a"),))]}
    inside = ask(
        "wiki/reader",
        None,
        entities=[{"type": "Group", "id": "a", "parents": [{"type": "Group", "id": "x"}]}],
    )
    outside = ask("wiki/editor", None, entities=[{"type": "Group", "id": "a"}])

    decisions = decision_api._decide_all(in_x, [inside, outside], known, CATALOGUE)

    assert [(d.effect, d.reasons) for d in decisions] == [
        ("permit", ("in-x",)),
        ("deny", ("no policy permits",)),
    ]


def test_the_catalogue_describes_entitlements_whatever_the_caller_says() -> None:
    # The README's example: no entities given, the catalogue says wiki/reader is low risk.
    bare = Question.model_validate(
        {
            "principal": {"type": "User", "id": "ada"},
            "action": "request",
            "resource": {"type": "Entitlement", "id": "wiki/reader"},
        }
    )
    # payroll/admin is high risk, whatever the caller claims.
    claimed = ask("payroll/admin", "low")

    decisions = decision_api._decide_all(POLICIES, [bare, claimed], KNOWN, CATALOGUE)

    assert [(d.effect, d.reasons, d.chain) for d in decisions] == [
        ("permit", ("low-risk-self-service",), ()),
        (
            "approval_required",
            ("high-risk-needs-manager-and-owner",),
            ("manager", "application_owner"),
        ),
    ]


def test_the_caller_cannot_replace_what_accord_knows_about_its_principal() -> None:
    question = ask("wiki/reader", "low")
    forged = question.model_copy(
        update={
            "entities": [
                *question.entities,
                EntityIn(type="User", id="eve", attrs={"active": True}),
            ],
            "principal": question.principal.model_copy(update={"id": "eve"}),
        }
    )
    eve = EntityRef("User", "eve")

    (decision,) = decision_api._decide_all(
        POLICIES, [forged], {eve: [Entity(eve, {"active": False})]}, CATALOGUE
    )

    assert decision.reasons == ("inactive-users-get-nothing",)


def test_every_question_the_api_accepts_can_be_logged_as_an_event() -> None:
    longest = Question.model_validate(
        {
            "principal": {"type": "A" * 128, "id": "\u00e9" * 256},
            "action": "x" * 256,
            "resource": {"type": "Acme::Doc_1", "id": "d\t1"},
        }
    )
    event = decision_api.decided_event(
        longest, Answer(decision="deny", reasons=["p0"], errors=[]), 1.0
    )
    assert (event.principal_type, event.resource_type) == ("A" * 128, "Acme::Doc_1")


@pytest.mark.parametrize(
    "principal",
    [
        {"type": "A" * 129, "id": "u"},
        {"type": "User", "id": "x" * 257},
        {"type": "User", "id": "\0"},
    ],
)
def test_what_no_event_could_hold_is_refused_at_the_door(principal: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Question.model_validate(
            {"principal": principal, "action": "read", "resource": {"type": "Doc", "id": "d"}}
        )


def test_approval_required_is_logged_as_no_access_naming_its_stages() -> None:
    answer = Answer(
        decision="approval_required",
        reasons=["high-risk-needs-manager-and-owner"],
        errors=[],
        approvals=[
            StageAnswer(stage=1, name="manager", approvers=["mia"]),
            StageAnswer(stage=2, name="application_owner", approvers=["payroll-owner"]),
        ],
    )

    event = decision_api.decided_event(ask("payroll/viewer", None), answer, 1.0)

    assert event.decision == "deny"
    assert event.reasons == (
        "high-risk-needs-manager-and-owner",
        "approval_required: manager, application_owner",
    )
