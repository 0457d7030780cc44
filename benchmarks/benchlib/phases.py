"""One load phase: publish a batch of joiners, wait until they are through, sum up."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from benchlib import load
from benchlib.resources import Watched, cpu_delta
from benchlib.stats import summary_ms
from benchlib.tracker import Journey, Tracker

Publish = Callable[[list[load.Joiner]], Awaitable[float]]


@dataclass
class Bench:
    """What every phase needs: the run's id, the tracker and the processes watched."""

    run: str
    tracker: Tracker
    watched: Watched
    say: Callable[[str], None]
    user_names: set[str] = field(default_factory=set)
    """Every joiner's user name the run published, for the check in the target."""


async def run_phase(
    bench: Bench, name: str, description: str, count: int, publish: Publish, drain_s: float
) -> dict[str, Any]:
    """Publish `count` joiners with `publish`, wait up to `drain_s` for them, and sum up."""
    batch = load.joiners(bench.run, name, count)
    bench.tracker.expect([j.user_id for j in batch], name)
    bench.user_names.update(j.user_name for j in batch)
    cpu_before = bench.watched.cpu()
    started = time.time()
    offered = await publish(batch)
    bench.say(f"  {name}: {count} published ({offered:,.0f}/s offered); waiting for the flow")
    finished = await bench.tracker.wait_done(name, drain_s)
    ended = time.time()
    cpu = cpu_delta(cpu_before, bench.watched.cpu())
    summary = summarize(bench.tracker.of_phase(name), cpu, ended - started)
    summary.update(description=description, offered_per_s=round(offered, 1))
    if not finished:
        summary["note"] = f"gave up waiting after {drain_s:.0f} s"
    bench.say(
        f"  {name}: {summary['done']}/{count} done end to end, {summary['failed']} failed;"
        f" sustained {summary['sustained_per_s']} joiners/s; account p50/p99"
        f" {summary['latency_ms']['publish_to_account']['p50']}/"
        f"{summary['latency_ms']['publish_to_account']['p99']} ms;"
        f" {summary['cpu_ms_per_joiner_total']} ms CPU per joiner"
    )
    return summary


def summarize(journeys: list[Journey], cpu: dict[str, float], wall_s: float) -> dict[str, Any]:
    """Counts, throughput, latencies and CPU of one phase's joiners."""
    published = [j.published for j in journeys if j.published is not None]
    done = [j for j in journeys if j.done is not None]
    failed = [j for j in journeys if j.failures and j.done is None]
    sustained = None
    if done and published:
        span = max(j.done for j in done if j.done is not None) - min(published)
        sustained = round(len(done) / span, 1) if span > 0 else None

    def since_publish(attribute: str) -> list[float]:
        values = []
        for j in journeys:
            value = getattr(j, attribute)
            if value is not None and j.published is not None:
                values.append(value - j.published)
        return values

    joiners = len(journeys)
    per_joiner = {
        label: round(seconds * 1000 / max(joiners, 1), 3) for label, seconds in cpu.items()
    }
    return {
        "joiners": joiners,
        "done": len(done),
        "failed": len(failed),
        "incomplete": joiners - len(done) - len(failed),
        "failures": sorted({f for j in failed for f in j.failures})[:10],
        "publish_span_s": round(max(published) - min(published), 3) if published else None,
        "sustained_per_s": sustained,
        "wall_s": round(wall_s, 2),
        "latency_ms": {
            "publish_to_account": summary_ms(since_publish("provisioned_at")),
            "publish_to_account_seen": summary_ms(since_publish("provisioned_seen")),
            "publish_to_saga_completed": summary_ms(since_publish("completed_at")),
            "publish_to_saga_completed_seen": summary_ms(since_publish("completed_seen")),
            "publish_to_audited": summary_ms(since_publish("done")),
        },
        "cpu_seconds": {label: round(s, 3) for label, s in cpu.items()},
        "cpu_ms_per_joiner": per_joiner,
        "cpu_ms_per_joiner_total": round(
            sum(v for k, v in per_joiner.items() if k != "bench-driver"), 2
        ),
        "cores_busy": round(sum(cpu.values()) / wall_s, 2) if wall_s > 0 else None,
    }


async def idle(bench: Bench, seconds: float, quiet_s: float = 0.0) -> dict[str, Any]:
    """CPU of the platform with no load: what polling and timers cost (ms per second), from
    `quiet_s` after the last load on (on Tansu the services poll less often once their
    topics are quiet: ACCORD_KAFKA_IDLE_AFTER_S; on Apache Kafka their long fetch wait
    already paces empty polls)."""
    import asyncio

    await asyncio.sleep(quiet_s)
    before = bench.watched.cpu()
    started = time.time()
    await asyncio.sleep(seconds)
    wall = time.time() - started
    cpu = cpu_delta(before, bench.watched.cpu())
    summary = summarize([], cpu, wall)
    per_second = {label: round(s * 1000 / wall, 2) for label, s in cpu.items()}
    summary.update(
        description=f"no load: {seconds:.0f} s from {quiet_s:.0f} s after the last (CPU ms per s)",
        offered_per_s=0.0,
        cpu_ms_per_joiner=per_second,
        cpu_ms_per_joiner_total=round(
            sum(v for k, v in per_second.items() if k != "bench-driver"), 2
        ),
    )
    bench.say(f"  idle: {summary['cpu_ms_per_joiner_total']} ms CPU per second, all services")
    return summary
