"""The outbox relay outlives the database going away, whatever asyncpg raises for it."""

from __future__ import annotations

from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from accord.runtime import outbox
from accord.runtime.outbox import OutboxRelay


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("cannot switch to state 12; another operation is running"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        ConnectionRefusedError("connection refused"),
    ],
    ids=type,
)
async def test_the_relay_retries_when_the_database_goes_away(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = OutboxRelay("postgresql://nowhere/db", "svc", cast(AIOKafkaProducer, None))
    attempts: list[int] = []

    async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        attempts.append(1)
        if len(attempts) == 2:
            await relay.stop()  # the second attempt shows the relay went on; enough
        raise error

    monkeypatch.setattr(outbox.asyncpg, "connect", connect)

    await relay.run()

    assert len(attempts) == 2
    assert not relay.leader
