"""A Service's metrics against the real database and broker: the consumer path, the relay's
delay from the outbox table's created_at, the pool, readiness and lag read at scrape time,
and GET /metrics refused without a credential."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import generate_latest

from accord.events import REGISTRY, Envelope
from accord.runtime.consumer import HandlerContext
from accord.runtime.metrics import unbounded_labels

from .conftest import CONSUMED, EMITTED, Kit, Recorder, completed, eventually, failed_because_of
from .test_runtime_service import _about, _status, definition, running

pytestmark = pytest.mark.integration


async def test_a_running_service_measures_what_it_consumes_relays_and_serves(
    kit: Kit, fresh_database: str, unique: str
) -> None:
    prefix = f"m-{unique}"

    async def reply(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        return [failed_because_of(envelope, ctx.source)]

    recorder = Recorder(prefix, reply)
    replies = await kit.collect(EMITTED, _about(prefix))
    name = f"svc_{unique}"
    async with running(definition(name, lambda rt: {CONSUMED: recorder}), fresh_database) as s:
        await eventually(lambda: _status(s.client, "/readyz", 200), what="/readyz 200")
        await kit.publish(completed(f"{prefix}-1"))
        await replies.wait_for(1, "the reply relayed from the outbox")
        metrics = s.service.metrics
        assert s.service.runtime is not None
        assert s.service.runtime.metrics is metrics

        def value(sample: str, **labels: str) -> float:
            return metrics.registry.get_sample_value(sample, labels) or 0.0

        topic = REGISTRY.spec(CONSUMED).topic
        # Other tests' records share the topic: lower bounds only.
        assert value("accord_consumer_records_total", topic=topic, outcome="handled") >= 1
        assert value("accord_handler_duration_seconds_count", event_type=CONSUMED) >= 1
        await eventually(
            lambda: value("accord_outbox_relay_delay_seconds_count") >= 1, what="relay delay"
        )
        assert 0 <= value("accord_outbox_relay_delay_seconds_sum") < 60

        await metrics.refresh()
        assert value("accord_ready") == 1
        assert value("accord_db_pool_connections", state="max") > 0
        lags = [
            sample
            for family in metrics.registry.collect()
            if family.name == "accord_consumer_lag_records"
            for sample in family.samples
        ]
        assert lags
        assert all(sample.value >= 0 for sample in lags)
        assert {sample.labels["topic"] for sample in lags} <= {topic}
        assert unbounded_labels(generate_latest(metrics.registry).decode()) == []

        assert (await s.client.get("/metrics")).status_code == 401
        assert value("accord_http_requests_total", route="/readyz", method="GET", status="200")
