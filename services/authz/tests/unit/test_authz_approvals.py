"""Approval chains without a database: parsing, choosing, resolving, deciding, timing out."""

from __future__ import annotations

import pytest

from accord.authz.domain.approvals import (
    ChainError,
    Directory,
    NotAnApprover,
    Stage,
    chain_for,
    check_approver,
    on_timeout,
    parse_chain,
    resolve,
    routed_chain,
    unapprovable,
)
from accord.authz.domain.policy_set import PolicyError, PolicySource, compile_policies


def test_a_chain_is_its_stages_in_order() -> None:
    assert parse_chain(" manager, application_owner ,group:sec-team") == (
        "manager",
        "application_owner",
        "group:sec-team",
    )


@pytest.mark.parametrize("text", ["", " , ", "boss", "group:", "manager, user:a b"])
def test_a_chain_naming_no_valid_stage_is_refused(text: str) -> None:
    with pytest.raises(ChainError):
        parse_chain(text)


def test_a_permitting_policy_without_approval_grants_at_once() -> None:
    annotations = {"a": {"approval": "manager"}, "b": {}}
    assert chain_for(["a", "b"], annotations) == ()
    assert chain_for(["a"], annotations) == ("manager",)


def test_the_longest_chain_of_the_permitting_policies_wins() -> None:
    annotations = {"a": {"approval": "manager"}, "b": {"approval": "manager, user:ciso"}}
    assert chain_for(["a", "b"], annotations) == ("manager", "user:ciso")


def people(**options: object) -> Directory:
    base: dict[str, object] = {
        "requester_id": "ada",
        "principal_id": "ada",
        "manager_of": {"ada": "mia", "mia": "ceo"},
        "owners": ("olga", "ada"),
        "escalation": ("sec",),
        "group_members": {"cab": ("ada", "carl")},
    }
    base.update(options)
    return Directory(**base)  # type: ignore[arg-type]


def test_stages_resolve_to_people_never_the_requester_or_principal() -> None:
    stages = resolve(("manager", "application_owner", "group:cab", "user:zed"), people())

    assert stages == [
        Stage(1, "manager", ("mia",), ("ceo",)),
        Stage(2, "application_owner", ("olga",), ("sec",)),
        Stage(3, "group:cab", ("carl",), ("sec",)),
        Stage(4, "user:zed", ("zed",), ("sec",)),
    ]
    assert unapprovable(stages) is None


def test_a_stage_only_the_requester_could_decide_makes_the_chain_unapprovable() -> None:
    stages = resolve(("manager",), people(requester_id="mia"))  # mia asks for ada

    assert stages[0].approvers == ()
    assert unapprovable(stages) == (
        "approval stage 1 (manager) has no approver other than the requester or the principal"
    )


def test_nobody_approves_their_own_request() -> None:
    with pytest.raises(NotAnApprover, match="own request"):
        check_approver("ada", requester_id="ada", principal_id="bob", approvers=["ada"])
    with pytest.raises(NotAnApprover, match="own request"):
        check_approver("bob", requester_id="ada", principal_id="bob", approvers=["bob"])
    with pytest.raises(NotAnApprover, match="not an approver"):
        check_approver("eve", requester_id="ada", principal_id="bob", approvers=["mia"])
    check_approver("mia", requester_id="ada", principal_id="bob", approvers=["mia"])


def test_an_overdue_stage_escalates_once_when_it_can_then_expires() -> None:
    assert on_timeout(escalated=False, escalation=["ceo"], policy="escalate") == "escalate"
    assert on_timeout(escalated=True, escalation=["ceo"], policy="escalate") == "expire"
    assert on_timeout(escalated=False, escalation=[], policy="escalate") == "expire"
    assert on_timeout(escalated=False, escalation=["ceo"], policy="expire") == "expire"


def test_approval_annotations_are_checked_when_policies_load() -> None:
    bad_chain = PolicySource(
        "p.cedar", '@id("x")\n@approval("boss")\npermit (principal, action, resource);'
    )
    on_forbid = PolicySource(
        "q.cedar", '\n@id("y")\n@approval("manager")\nforbid (principal, action, resource);'
    )
    with pytest.raises(PolicyError, match=r"^p.cedar:2: @approval stage 'boss'"):
        compile_policies([bad_chain], None)
    with pytest.raises(PolicyError, match=r"^q.cedar:3: @approval belongs on permit policies"):
        compile_policies([on_forbid], None)
    good = PolicySource(
        "r.cedar", '@id("z")\n@approval("manager")\npermit (principal, action, resource);'
    )
    assert compile_policies([good], None).annotations["z"]["approval"] == "manager"


def test_a_routed_chain_puts_the_sod_stages_first_each_stage_once() -> None:
    annotations = {
        "sod-a": {"sod": "x", "approval": "user:ciso, manager"},
        "high": {"approval": "manager, application_owner"},
        "low": {},
    }
    assert routed_chain(["sod-a"], ["high"], annotations) == (
        "user:ciso",
        "manager",
        "application_owner",
    )
    assert routed_chain(["sod-a"], ["low"], annotations) == ("user:ciso", "manager")
