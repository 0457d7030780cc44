"""The stream aggregates as a faust-streaming app: agents, table and timer around the domain.

Two agents, so that any number of auditor replicas give one right answer:

1. `<id>-records` reads audit.recorded (any partitions this member owns), decodes each
   CloudEvents record and forwards its Observation, in batches, to `<id>-observations`, an
   internal topic of one partition.
2. `<id>-windows` reads that one partition, so one member sees every record: it feeds the
   Aggregator (domain.aggregates), the Prometheus metrics, and publishes an audit.metrics
   event per closed window.

The aggregator's state (open windows, joiners tracked, clock) is checkpointed every couple
of seconds into the table `state` (changelog-backed; only changed rows are written) and
restored from it by the member that takes the partition over. A crash can so lose or count
twice the last seconds of records; audit.metrics events carry a fixed id per window, so a
window published again after a crash is a duplicate consumers drop.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP, EventT, StreamT
from faust.types.auth import CredentialsT

from accord.auditor.aggregates import state
from accord.auditor.domain.aggregates import Aggregator, Observation, Policy, Step, observation_of
from accord.auditor.metrics import AuditorMetrics
from accord.events import (
    AuditMetrics,
    AuditRecorded,
    InvalidEvent,
    from_kafka,
    new_event,
    to_kafka,
    topics,
)
from accord.events.kafka_config import client_config

log = logging.getLogger(__name__)

DEFAULT_ID = "accord-auditor-aggregates"
#: Records forwarded per message to the observations partition (and how long to gather them):
#: one message per record ran at ~1.4k records/s here, batches at ~4.8k/s.
BATCH = 500
BATCH_WAIT_S = 0.2


@dataclass(frozen=True)
class AggregatesConfig:
    """Where the aggregates read and write, and how patiently."""

    app_id: str = DEFAULT_ID
    """faust app id: the consumer group, and the prefix of the app's own topics."""
    source_topic: str = topics.AUDIT_RECORDED
    """Carries audit.recorded events (another topic only in tests)."""
    metrics_topic: str = topics.AUDIT_METRICS
    source: str = "accord/auditor"
    """CloudEvents source of the audit.metrics events."""
    policy: Policy = field(default_factory=Policy)
    tick_s: float = 1.0
    """How often the clock may close windows of an idle stream."""
    checkpoint_s: float = 2.0
    session_timeout_s: float = 6.0
    """A group join takes about half of it on Tansu: keep it short."""
    replication: int = 1
    """Replication factor of the app's own topics."""
    kafka: Mapping[str, Any] | None = None
    """aiokafka connection settings; None: from the KAFKA_* environment."""
    stop_timeout_s: float = 15.0


class AggregatesCrashed(RuntimeError):
    """faust stopped by itself (crashed) while the auditor was running."""


class StreamAggregates:
    """One faust app around one Aggregator; build a new one to start again after a crash."""

    def __init__(self, config: AggregatesConfig, metrics: AuditorMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.aggregator = Aggregator(config.policy)
        self._owner = False
        self._unpublished: list[AuditMetrics] = []
        # The timer and the windows agent both publish: one at a time, or both would send
        # the oldest window while the other's send waits (a broker failing over) and both
        # pop it.
        self._publishing = asyncio.Lock()
        self._checkpointed = time.monotonic()
        self._datadir = Path(tempfile.mkdtemp(prefix=f"{config.app_id}-"))
        app_id = config.app_id
        self.app = faust.App(app_id, **faust_settings(config, self._datadir))
        self.source = self.app.topic(
            config.source_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
        self.observations = self.app.topic(
            f"{app_id}-observations",
            partitions=1,
            internal=True,
            key_serializer="raw",
            value_serializer="json",
        )
        self.output = self.app.topic(
            config.metrics_topic, key_serializer="raw", value_serializer="raw"
        )
        self.table = self.app.Table(
            "state", partitions=1, use_partitioner=True, on_recover=self._recovered
        )
        self.app.agent(self.source, name=f"{app_id}-records")(self._records)
        self.app.agent(self.observations, name=f"{app_id}-windows")(self._windows)
        self.app.timer(config.tick_s, name=f"{app_id}-tick")(self._tick)

    @property
    def owner(self) -> bool:
        """Whether this member holds the observations partition (and so the aggregates)."""
        return self._owner

    async def serve(self, stopping: asyncio.Event) -> None:
        """Run until `stopping` is set; AggregatesCrashed if faust fails first."""
        starting = asyncio.create_task(self.app.start(), name=f"{self.config.app_id} start")
        stop = asyncio.create_task(stopping.wait())
        ended = asyncio.create_task(self.app.wait_until_stopped())
        waiting = {starting, stop, ended}
        try:
            while True:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if starting in done:
                    waiting.discard(starting)
                    starting.result()  # a failed start raises here
                if done - {starting}:
                    break
            if not stopping.is_set():
                raise AggregatesCrashed(f"stream aggregates stopped: {self.app.crash_reason!r}")
        finally:
            for task in waiting:
                task.cancel()
            await self.stop()

    async def stop(self) -> None:
        """Stop faust (bounded) and remove its data folder."""
        try:
            async with asyncio.timeout(self.config.stop_timeout_s):
                await self.app.stop()
        except Exception:
            log.exception("stream aggregates did not stop cleanly")
        finally:
            shutil.rmtree(self._datadir, ignore_errors=True)

    async def _records(self, stream: StreamT[bytes]) -> None:
        """Agent 1: audit.recorded -> observations (one partition), a batch per message."""
        batches = cast(faust.Stream[bytes], stream).take_events(BATCH, within=BATCH_WAIT_S)
        events: Sequence[EventT[bytes]]
        async for events in batches:
            observations = [o for o in map(self._decode, events) if o is not None]
            if observations:
                # Sent as the batch's records are acknowledged (faust attachments):
                # at least once.
                await self.observations.send(value=state.batch_json(observations))

    async def _windows(self, stream: StreamT[Any]) -> None:
        """Agent 2: observations -> aggregator -> metrics and audit.metrics."""
        async for value in stream:
            if not self._owner:
                self._take_over()
            try:
                observations, unreadable = state.batch_from(value)
            except state.StateError as error:
                observations, unreadable = [], 1
                log.warning("unreadable observations skipped", extra={"error": str(error)})
            if unreadable:
                self.metrics.invalid_records.inc(unreadable)
            for observation in observations:
                self.metrics.observed(observation)
                try:
                    step = self.aggregator.observe(observation, _now())
                except Exception:
                    # One record the aggregates cannot take must not stop them.
                    self.metrics.invalid_records.inc()
                    log.exception("observation skipped")
                    continue
                await self._after(step)

    async def _tick(self, app: faust.App) -> None:
        """Timer: close the windows of an idle stream, checkpoint."""
        if not (self._owner and self._holds_partition()):
            return
        try:
            await self._after(self.aggregator.advance(_now()))
            if time.monotonic() - self._checkpointed >= self.config.checkpoint_s:
                self._checkpoint()
        except Exception:
            # An exception would end the timer for good: log it, the next tick tries again.
            log.exception("stream aggregates tick failed")

    async def _recovered(self) -> None:
        """After each rebalance: take the aggregates over, keep them, or let them go."""
        holds = self._holds_partition()
        if holds and not self._owner:
            self._take_over()
        elif not holds and self._owner:
            log.info("stream aggregates handed over to another member")
            self.aggregator = Aggregator(self.config.policy)
            self._owner = False

    def _take_over(self) -> None:
        restored = state.state_from(list(self.table.items()))
        if restored.skipped:
            log.warning("unreadable aggregate state rows ignored", extra={"rows": restored.skipped})
        self.aggregator.restore(restored.clock, restored.windows, restored.joiners, _now())
        self._owner = True
        log.info(
            "stream aggregates taken over",
            extra={"windows": len(restored.windows), "joiners": len(restored.joiners)},
        )

    def _holds_partition(self) -> bool:
        topic = self.observations.get_topic_name()
        return bool(self.app.assignor.is_active(TP(topic, 0)))

    def _decode(self, event: EventT[bytes]) -> Observation | None:
        message = event.message
        headers = message.headers or []
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        try:
            envelope = from_kafka(topics.AUDIT_RECORDED, message.key, message.value, pairs)
            if not isinstance(envelope.data, AuditRecorded):
                raise InvalidEvent(f"{envelope.type} on the audit.recorded topic")
        except InvalidEvent as error:
            self.metrics.invalid_records.inc()
            log.warning("audit.recorded record skipped", extra={"error": error.reason})
            return None
        return observation_of(envelope.data, envelope.time)

    async def _after(self, step: Step) -> None:
        self.metrics.stepped(step, self.aggregator.pending)
        self._unpublished += step.closed
        if self._unpublished:
            await self._publish()
        if step.closed:
            # The windows are closed: drop them from the table now, not at the next checkpoint.
            self._checkpoint()

    async def _publish(self) -> None:
        """Send the closed windows, oldest first; those the broker refused wait for a tick."""
        async with self._publishing:
            await self._publish_pending()

    async def _publish_pending(self) -> None:
        while self._unpublished:
            data = self._unpublished[0]
            envelope = new_event(
                data, source=self.config.source, event_id=window_event_id(data.window_start)
            )
            record = to_kafka(envelope)
            try:
                # force: not attached to the record being handled, so it can be awaited here.
                sent = await self.output.send(
                    key=record.key, value=record.value, headers=list(record.headers), force=True
                )
                await sent
            except Exception as error:
                log.warning(
                    "audit.metrics not sent; trying again",
                    extra={"window": data.window_start, "error": repr(error)},
                )
                return
            self._unpublished.pop(0)
            self.metrics.published(1)
            log.info(
                "audit.metrics published",
                extra={"window": data.window_start, "records": data.records},
            )

    def _checkpoint(self) -> None:
        for key, value in state.rows(self.aggregator.changes()).items():
            if value is not None:
                self.table[key] = value
            elif key in self.table:
                del self.table[key]
        self._checkpointed = time.monotonic()


def window_event_id(window_start: str) -> str:
    """The fixed event id of a window's audit.metrics event: a re-publish is a duplicate."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:accord:audit.metrics:{window_start}"))


def faust_settings(config: AggregatesConfig, datadir: Path) -> dict[str, Any]:
    """faust App settings: the same broker and credentials as the rest of the auditor."""
    kafka = dict(config.kafka if config.kafka is not None else client_config())
    servers = [s.strip() for s in str(kafka["bootstrap_servers"]).split(",") if s.strip()]
    return {
        "broker": [f"kafka://{server}" for server in servers],
        "broker_credentials": credentials(kafka),
        "broker_session_timeout": config.session_timeout_s,
        "broker_heartbeat_interval": max(0.5, config.session_timeout_s / 3),
        "consumer_auto_offset_reset": "earliest",
        "store": "memory://",
        "datadir": str(datadir),
        "table_standby_replicas": 0,
        "topic_replication_factor": config.replication,
        "web_enabled": False,
        "autodiscover": False,
    }


def credentials(kafka: Mapping[str, Any]) -> CredentialsT | None:
    """faust credentials from aiokafka settings (client_config's TLS and SASL)."""
    protocol = str(kafka.get("security_protocol", "PLAINTEXT")).upper()
    ssl_context = kafka.get("ssl_context")
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=kafka.get("sasl_plain_username"),
            password=kafka.get("sasl_plain_password"),
            ssl_context=ssl_context if protocol == "SASL_SSL" else None,
            mechanism=kafka.get("sasl_mechanism"),
        )
    return None


def _now() -> datetime:
    return datetime.now(UTC)
