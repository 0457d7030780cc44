"""The provisioner's routes as bootstrap wires them: typed, and failing closed.

No database and no target: a command for a target that is not configured fails before any
port is used, and an event that does not carry a ProvisionRequested is a dead letter.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from accord.events import (
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    Profile,
    ProvisionRequested,
    new_event,
    topics,
)
from accord.provisioner.bootstrap import definition
from accord.provisioner.handlers import command_work
from accord.provisioner.settings import ProvisionerSettings
from accord.runtime.errors import PermanentError
from accord.runtime.routes import Effect, EffectContext, HandlerContext
from accord.runtime.service import Runtime

SOURCE = "urn:accord:provisioner"


def effect(tmp_path: Path) -> Effect:
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets: []\n")
    service = definition(ProvisionerSettings(targets_file=targets))
    route = service.routes(cast(Runtime, SimpleNamespace(pool=None)))[topics.PROVISION_REQUESTED]
    assert isinstance(route, Effect)
    return route


def request() -> Envelope:
    data = ProvisionRequested(
        user_id="u-1",
        target="payroll",
        operation="create",
        saga_id="s-1",
        step_id="s-1:payroll",
        profile=Profile(user_name="ada"),
    )
    return new_event(data, source="urn:accord:orchestrator")


async def test_a_command_for_a_target_not_configured_fails_for_good(tmp_path: Path) -> None:
    ctx = EffectContext(source=SOURCE, topic=topics.PROVISION_REQUESTED)

    result = await effect(tmp_path).handler(request(), ctx)

    assert isinstance(result, list)
    (reply,) = result
    assert reply.source == SOURCE
    assert isinstance(reply.data, AccountProvisionFailed)
    assert (reply.data.reason, reply.data.retryable) == ("unknown target payroll", False)


async def test_the_work_of_a_command_is_its_account_in_its_target(tmp_path: Path) -> None:
    route = effect(tmp_path)

    assert route.work_key is command_work
    assert route.record is not None


async def test_another_payload_is_a_dead_letter_for_both_steps(tmp_path: Path) -> None:
    route = effect(tmp_path)
    outcome = AccountProvisioned(
        user_id="u-1",
        target="crm",
        operation="create",
        saga_id="s-1",
        step_id="s-1:crm",
        account_id="acc-1",
        already_existed=False,
    )
    wrong = new_event(outcome, source=SOURCE)
    ctx: Any = HandlerContext(conn=cast(Any, None), source=SOURCE, topic="provision.requested")

    with pytest.raises(PermanentError, match="not ProvisionRequested"):
        await route.handler(wrong, ctx)
    assert route.record is not None
    with pytest.raises(PermanentError, match="not ProvisionRequested"):
        await route.record(wrong, ctx)
