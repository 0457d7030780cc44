"""Which broker a run measures, and what the clients did on it.

`make bench` measures on Apache Kafka (one KRaft node, started by the benchmark) unless
`--broker tansu` or ACCORD_BROKER=tansu asks for Tansu. The broker's profile
(accord.events.brokers) decides what the harness's clients ask of it, as it does for the
services: idempotent producers on Apache Kafka, and the fetch waits. The services' fetch
waits are the profile's unless the user sets them; the run records which were in effect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from accord.events.brokers import BROKER_ENV, DEFAULT_BROKER, BrokerProfile, profile_named

#: The services' fetch-wait settings: (variable, the profile's value of it).
WAIT_SETTINGS = (
    ("ACCORD_KAFKA_FETCH_MAX_WAIT_MS", "fetch_max_wait_ms"),
    ("ACCORD_KAFKA_IDLE_FETCH_MAX_WAIT_MS", "idle_fetch_max_wait_ms"),
    ("ACCORD_AUDIT_FETCH_MAX_WAIT_MS", "audit_fetch_max_wait_ms"),
)
TRACKER_MIN_FETCH_WAIT_MS = 50
"""The benchmark's tracker never polls more often than this: on Tansu, which answers a fetch
only when its wait runs out, 20 ms would charge the broker and the driver fetches nobody needs
(the tracker's waits move only the "seen" times, never the event times of the headline)."""


def chosen(flag: str | None, env: Mapping[str, str] | None = None) -> BrokerProfile:
    """The broker of the run: the flag, else ACCORD_BROKER, else Apache Kafka."""
    env = os.environ if env is None else env
    return profile_named(flag or env.get(BROKER_ENV) or DEFAULT_BROKER)


def prepare(flag: str | None) -> BrokerProfile:
    """The run's broker (see `chosen`), announced in ACCORD_BROKER so that every client of
    this process (accord.events.Publisher, the floor) and the services adapt to it. Exits
    with a clear message when Apache Kafka is asked for but cannot run here."""
    profile = chosen(flag)
    if profile.name == "kafka":
        from accord.stack.kafka import KafkaUnavailable, kafka_lib

        try:
            kafka_lib()
        except KafkaUnavailable as error:
            raise SystemExit(
                f"cannot measure on Apache Kafka: {error}\n"
                "(--broker tansu, or `make bench BROKER=tansu`, measures on Tansu)"
            ) from None
    os.environ[BROKER_ENV] = profile.name
    return profile


def label(kind: str) -> str:
    """The broker process's label in the CPU and memory tables: "broker (kafka)"."""
    return f"broker ({kind})"


def kafka_version() -> str | None:
    """The Apache Kafka release whose jars the stack runs (None without them)."""
    from accord.stack.kafka import KafkaUnavailable, kafka_lib

    try:
        lib = kafka_lib()
    except KafkaUnavailable:
        return None
    for jar in sorted(lib.glob("kafka_2.13-*.jar")):
        version = jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
        if version[:1].isdigit() and "-" not in version:  # not -test, -sources
            return version
    return None


def describe(kind: str, *, started_here: bool) -> dict[str, Any]:
    """What the results say of the broker: its kind, a readable name and its version."""
    profile = profile_named(kind)
    version = kafka_version() if kind == "kafka" and started_here else None
    if kind == "kafka":
        name = f"Apache Kafka {version}" if version else "Apache Kafka"
        name += ", one KRaft node" if started_here else " (not started by the benchmark)"
    else:
        name = "Tansu, in memory" if started_here else "Tansu (not started by the benchmark)"
    return {
        "kind": kind,
        "name": name,
        "version": version,
        "started_here": started_here,
        "idempotent_producer": profile.idempotent_producer,
    }


def describe_waits(waits: Mapping[str, Any]) -> str:
    """One readable line of the waits in effect (waits_in_effect's answer)."""
    titles = {
        "fetch_max_wait_ms": "services",
        "idle_fetch_max_wait_ms": "services once idle",
        "audit_fetch_max_wait_ms": "auditor",
    }
    parts = []
    for field, title in titles.items():
        wait = waits.get(field) or {}
        ms = "no change" if wait.get("ms") is None else f"{wait['ms']} ms"
        parts.append(f"{title} {ms} ({wait.get('from', '?')})")
    return "; ".join(parts)


def waits_in_effect(service_env: Mapping[str, str], profile: BrokerProfile) -> dict[str, Any]:
    """The services' fetch waits: each setting from their environment where it is set, else
    the broker profile's; `from` says which (None: the wait never changes)."""
    waits: dict[str, Any] = {}
    for variable, field in WAIT_SETTINGS:
        value = service_env.get(variable)
        if value:
            waits[field] = {"ms": int(value), "from": variable}
        else:
            waits[field] = {"ms": getattr(profile, field), "from": f"{profile.name} profile"}
    return waits


def tracker_fetch_wait_ms(profile: BrokerProfile) -> int:
    """The benchmark tracker's fetch wait on this broker (see TRACKER_MIN_FETCH_WAIT_MS)."""
    return max(profile.fetch_max_wait_ms, TRACKER_MIN_FETCH_WAIT_MS)
