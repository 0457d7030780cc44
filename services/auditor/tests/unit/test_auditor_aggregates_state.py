"""The aggregates' JSON forms (repartition topic, table rows), faust settings, publishing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import faust
import pytest
from aiokafka.errors import KafkaTimeoutError

from accord.auditor.aggregates import StreamAggregates, config_from, state
from accord.auditor.aggregates.app import (
    AggregatesConfig,
    credentials,
    faust_settings,
    window_event_id,
)
from accord.auditor.domain.aggregates import Aggregator, Observation, Policy, Step, epoch_ms
from accord.auditor.metrics import AuditorMetrics
from accord.auditor.settings import AuditorSettings
from accord.events import AuditMetrics, topics

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = START + timedelta(hours=1)


def obs(kind: str, second: float, corr: str, **extra: Any) -> Observation:
    outcome = {"account.provisioned": "success", "saga.completed": "success"}.get(kind, "info")
    at = epoch_ms(START) + int(second * 1000)
    return Observation(at, at, kind, outcome, corr, **extra)


JOINER = [
    obs("user.created", 1, "a"),
    obs("saga.started", 1.1, "a", saga_type="joiner", targets=("ldap", "scim")),
    obs("provision.requested", 1.2, "a", target="ldap"),
    obs("account.provisioned", 2, "a", target="ldap"),
    obs("user.created", 3, "b"),
    obs("account.provisioned", 4, "a", target="scim"),
    obs("saga.completed", 4.5, "a", saga_type="joiner"),
]


def test_an_observation_survives_the_repartition_topic() -> None:
    for observation in JOINER:
        carried = json.loads(json.dumps(state.observation_json(observation)))
        assert state.observation_from(carried) == observation


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"r": "1", "o": 1, "t": "x", "out": "info", "c": "c", "tg": None, "st": None, "ts": []},
        {"r": True, "o": 1, "t": "x", "out": "info", "c": "c", "tg": None, "st": None, "ts": []},
        {"r": 1, "o": 1, "t": "x", "out": "meh", "c": "c", "tg": None, "st": None, "ts": []},
        {"r": 1, "o": 1, "t": "x", "out": "info", "c": "c", "tg": 5, "st": None, "ts": []},
        {"r": 1, "o": 1, "t": "x", "out": "info", "c": "c", "tg": None, "st": None, "ts": "ab"},
        ["not", "a", "dict"],
        None,
    ],
)
def test_anything_else_on_the_repartition_topic_is_refused(broken: Any) -> None:
    with pytest.raises(state.StateError):
        state.observation_from(broken)


def test_observations_travel_in_batches_and_bad_items_are_counted() -> None:
    message = json.loads(json.dumps(state.batch_json(JOINER[:3])))
    assert state.batch_from(message) == (JOINER[:3], 0)
    message["observations"].insert(1, {"r": "x"})
    assert state.batch_from(message) == (JOINER[:3], 1)
    with pytest.raises(state.StateError):
        state.batch_from({"observations": "none"})
    with pytest.raises(state.StateError):
        state.batch_from([])


def test_table_rows_restore_the_same_aggregates() -> None:
    table: dict[str, Any] = {}

    def checkpoint(aggregator: Aggregator) -> None:
        for key, value in state.rows(aggregator.changes()).items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = json.loads(json.dumps(value))  # as the changelog carries it

    whole = Aggregator()
    for observation in JOINER:
        whole.observe(observation, NOW)
    expected = whole.advance(NOW + timedelta(hours=2)).closed

    first = Aggregator()
    for observation in JOINER[:5]:
        first.observe(observation, NOW)
    checkpoint(first)
    assert set(table) == {"clock", f"window:{epoch_ms(START)}", "joiner:a", "joiner:b"}
    restored = state.state_from(table.items())
    assert restored.skipped == 0
    second = Aggregator()
    second.restore(restored.clock, restored.windows, restored.joiners, NOW)
    for observation in JOINER[5:]:
        second.observe(observation, NOW)
    checkpoint(second)
    assert "joiner:a" not in table  # measured: its row is deleted
    assert second.advance(NOW + timedelta(hours=2)).closed == expected
    checkpoint(second)
    assert set(table) == {"clock"}  # b, two hours without news, was evicted


def test_unreadable_rows_are_counted_and_left_out() -> None:
    restored = state.state_from(
        [
            ("clock", {"watermark": 5, "closed_until": None}),
            ("window:1", {"start": "one"}),
            ("joiner:x", {"seen": 1}),
            ("mystery", {}),
            (b"bytes-key", {}),
            ("joiner:gone", None),
        ]
    )
    assert (restored.clock, restored.windows, restored.joiners, restored.skipped) == (
        state.Clock(5, None),
        [],
        {},
        3,
    )


def test_the_settings_switch_and_tune_the_aggregates(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AuditorSettings().audit_aggregates is True
    monkeypatch.setenv("ACCORD_AUDIT_AGGREGATES", "off")
    monkeypatch.setenv("ACCORD_AUDIT_AGGREGATES_GRACE_S", "3")
    monkeypatch.setenv("ACCORD_AUDIT_AGGREGATES_HORIZON_S", "600")
    monkeypatch.setenv("ACCORD_KAFKA_SESSION_TIMEOUT_MS", "4000")
    settings = AuditorSettings()
    assert settings.audit_aggregates is False
    config = config_from(settings)
    assert config.policy == Policy(grace_s=3, horizon_s=600)
    assert config.session_timeout_s == 4.0
    assert (config.source_topic, config.metrics_topic) == (
        topics.AUDIT_RECORDED,
        topics.AUDIT_METRICS,
    )


def test_faust_gets_the_brokers_and_credentials_of_the_auditor() -> None:
    kafka = {"bootstrap_servers": "k1:9092, k2:9093", "security_protocol": "PLAINTEXT"}
    settings = faust_settings(AggregatesConfig(kafka=kafka), datadir=Path("/x"))
    assert settings["broker"] == ["kafka://k1:9092", "kafka://k2:9093"]
    assert settings["broker_credentials"] is None
    assert settings["broker_session_timeout"] == 6.0
    assert (settings["web_enabled"], settings["store"]) == (False, "memory://")
    sasl = credentials(
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "accord",
            "sasl_plain_password": "pw",
        }
    )
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.username, sasl.password, sasl.mechanism.value) == ("accord", "pw", "SCRAM-SHA-512")
    assert sasl.protocol.value == "SASL_PLAINTEXT"


def test_a_window_has_one_event_id_whoever_publishes_it() -> None:
    assert window_event_id("2024-05-01T12:00:00Z") == window_event_id("2024-05-01T12:00:00Z")
    assert window_event_id("2024-05-01T12:00:00Z") != window_event_id("2024-05-01T12:01:00Z")


class FlakyTopic:
    """A topic whose broker refuses the first send."""

    def __init__(self) -> None:
        self.refusals = 1
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, **message: Any) -> asyncio.Future[None]:
        if self.refusals:
            self.refusals -= 1
            raise KafkaTimeoutError("broker away")
        self.sent.append((message["key"], message["value"]))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_window_the_broker_refused_is_sent_again_at_the_next_step() -> None:
    metrics = AuditorMetrics()
    aggregates = StreamAggregates(
        AggregatesConfig(kafka={"bootstrap_servers": "127.0.0.1:1"}), metrics
    )
    try:
        output = FlakyTopic()
        aggregates.output = cast(Any, output)
        window = AuditMetrics(window_start="2024-05-01T12:00:00Z", records=3)
        await aggregates._after(Step(closed=(window,)))
        assert output.sent == []
        await aggregates._after(Step())  # the next tick
        [(key, value)] = output.sent
        assert key == b"2024-05-01T12:00:00Z"
        assert json.loads(value)["records"] == 3
        assert metrics.registry.get_sample_value("accord_audit_metrics_windows_total") == 1
    finally:
        await aggregates.stop()


class SlowTopic:
    """A topic whose acknowledgement takes a while (a broker failing over)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, **message: Any) -> asyncio.Future[None]:
        self.sent.append(message["key"])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, done.set_result, None)
        return done


async def test_the_timer_and_the_agent_publishing_at_once_send_each_window_once() -> None:
    metrics = AuditorMetrics()
    aggregates = StreamAggregates(
        AggregatesConfig(kafka={"bootstrap_servers": "127.0.0.1:1"}), metrics
    )
    try:
        output = SlowTopic()
        aggregates.output = cast(Any, output)
        windows = [
            AuditMetrics(window_start=f"2024-05-01T12:0{n}:00Z", records=n) for n in range(3)
        ]
        aggregates._unpublished += windows
        # The tick's publish waits for its acknowledgement while the agent's begins.
        await asyncio.gather(aggregates._publish(), aggregates._publish())
        assert output.sent == [w.window_start.encode() for w in windows]
        assert metrics.registry.get_sample_value("accord_audit_metrics_windows_total") == 3
    finally:
        await aggregates.stop()
