"""The orchestrator's routes: every event type it consumes, each with its payload model."""

from __future__ import annotations

from typing import Any, cast

import pytest

from accord.events import UserUpdated, new_event, topics
from accord.orchestrator.bootstrap import routes
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.runtime.errors import PermanentError
from accord.runtime.routes import HandlerContext

SETTINGS = WorkflowSettings(birthright=everyone(["crm"]))


def test_every_consumed_event_type_has_a_route() -> None:
    assert set(routes(SETTINGS)) == {
        topics.USER_CREATED,
        topics.USER_UPDATED,
        topics.USER_DEACTIVATED,
        topics.USER_REACTIVATED,
        topics.USER_DELETED,
        topics.ACCOUNT_PROVISIONED,
        topics.ACCOUNT_PROVISION_FAILED,
        topics.ACCESS_GRANTED,
        topics.ACCESS_REVOKED,
        topics.IDENTITY_LOCKED,
        topics.IDENTITY_UNLOCKED,
        topics.APPROVAL_DECIDED,
        topics.ACCESS_DECIDED,
        topics.ACCESS_APPROVAL_DECIDED,
    }


async def test_a_route_dead_letters_a_payload_of_another_model() -> None:
    route = routes(SETTINGS)[topics.USER_CREATED]
    wrong = new_event(UserUpdated(user_id="u-1", user_name="u-1"), source="urn:test", sequence=1)
    ctx = HandlerContext(conn=cast(Any, None), source="urn:test", topic=topics.USER_CREATED)
    with pytest.raises(PermanentError, match="not UserCreated"):
        await route(wrong, ctx)
