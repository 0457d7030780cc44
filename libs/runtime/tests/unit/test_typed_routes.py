"""Typed routes: the route knows its payload model, checks it and builds the handler's ports."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from accord.events import Envelope, GroupCreated, UserCreated, UserDeleted, new_event
from accord.runtime.errors import PermanentError
from accord.runtime.routes import EffectContext, Handler, on, table


@dataclass
class Seen:
    source: str
    names: list[str]


async def remember(event: Envelope, data: UserCreated | UserDeleted, ports: Seen) -> list[Envelope]:
    ports.names.append(f"{event.type}:{data.user_id}")
    return []


def ports_of(ctx: EffectContext) -> Seen:
    return Seen(ctx.source, [])


def created(user_id: str = "u1") -> Envelope:
    return new_event(UserCreated(user_id=user_id, user_name="ada"), source="test", sequence=1)


async def test_the_handler_gets_the_typed_payload_and_ports_built_from_the_context() -> None:
    seen: list[Seen] = []

    def ports(ctx: EffectContext) -> Seen:
        seen.append(Seen(ctx.source, []))
        return seen[-1]

    route = on(UserCreated, remember, ports)
    assert await route(created(), EffectContext(source="accord/test", topic="user.created")) == []
    assert seen == [Seen("accord/test", ["user.created:u1"])]


async def test_an_event_of_another_model_is_a_permanent_error_naming_both() -> None:
    route = on(UserCreated, remember, ports_of)
    group = new_event(GroupCreated(group_id="g1", display_name="G"), source="test", sequence=1)
    with pytest.raises(PermanentError, match="GroupCreated, not UserCreated"):
        await route(group, EffectContext(source="s", topic="group.created"))


def test_the_table_keys_each_route_by_the_types_of_its_models() -> None:
    both = on((UserCreated, UserDeleted), remember, ports_of)
    routes = table([both])
    assert set(routes) == {"user.created", "user.deleted"}
    assert routes["user.deleted"] is both


def test_a_type_routed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"user\.created routed twice"):
        table([on(UserCreated, remember, ports_of), on(UserCreated, remember, ports_of)])


def test_a_typed_route_is_a_handler() -> None:
    handler: Handler = on(UserCreated, remember, ports_of)  # type-checked by mypy
    assert callable(handler)
