"""benchmarks/e2e.py in its smoke mode: the whole benchmark's code path on a few joiners.

It runs in process on the end-to-end tests' platform (the platform `make bench` starts for
itself costs a minute to start), so that it cannot rot; it checks that the benchmark wrote
its results, never how fast anything was. It runs on the session's broker (Apache Kafka or
Tansu, in ACCORD_BROKER during the session) and checks that the run says which.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from accord.events.brokers import BROKER_ENV
from accord.stack.platform import Platform
from accord.stack.testing import load_script

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
PHASES = ("warm-up", "idle", "light", "fixed-rate", "max", "near-sat", "warm-up-2x", "max-2x")
LATENCIES = ("publish_to_account", "publish_to_saga_completed", "publish_to_audited")
HEADLINE_NUMBERS = (
    "sustained_per_s",
    "sustained_two_instances_per_s",
    "fixed_rate_account_p50_ms",
    "fixed_rate_account_p99_ms",
    "max_service_peak_rss_mib",
)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(300)
async def test_the_smoke_benchmark_writes_its_results(platform: Platform, tmp_path: Path) -> None:
    bench = load_script(BENCHMARKS / "e2e.py", "accord_bench_e2e")
    folder = tmp_path / bench.stamp()

    returned = await bench.run_on(platform, folder, smoke=True)

    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert (tmp_path / "latest" / "results.md").read_text().startswith("# Accord end-to-end")
    assert returned["report"].startswith("# Accord end-to-end")
    assert returned["run_id"] == results["run_id"]
    assert results["smoke"] is True
    kind = os.environ[BROKER_ENV]
    assert results["broker"]["kind"] == kind
    assert results["headline"]["broker"] == kind
    assert returned["report"].startswith(f"# Accord end-to-end benchmark on {kind}")
    waits = results["settings"]["fetch_waits"]
    assert set(waits) == {"fetch_max_wait_ms", "idle_fetch_max_wait_ms", "audit_fetch_max_wait_ms"}
    assert all(wait["from"] for wait in waits.values()), waits
    assert set(PHASES) <= set(results["phases"])
    for name in PHASES:
        phase = results["phases"][name]
        assert phase["failed"] == 0, (name, phase["failures"])
        assert phase["done"] == phase["joiners"], name
        assert is_number(phase["cpu_ms_per_joiner_total"]), name
        if phase["joiners"]:
            assert is_number(phase["sustained_per_s"]), name
            for latency in LATENCIES:
                assert is_number(phase["latency_ms"][latency]["p99"]), (name, latency)
    for key in HEADLINE_NUMBERS:
        assert is_number(results["headline"][key]), key
    assert results["target_check"]["ok"], results["target_check"]
    second = {f"{name}-2" for name in results["settings"]["counts"]["second_instances"]}
    assert second <= set(results["phases"]["max-2x"]["cpu_ms_per_joiner"])
    assert "## Targets (issue 24)" in returned["report"]
    assert results["targets"], results["targets"]
    for target in results["targets"]:
        assert target["met"] in (True, False, None), target
        assert target["met"] is None or is_number(target["measured"]), target
    assert all(is_number(mib) for mib in results["peak_memory_mib"].values())
    assert is_number(results["audit_log"]["stored_batched_per_s"])
    assert is_number(results["audit_log"]["verify_seconds_per_100k"])
    assert is_number(results["authz"]["in_process"]["single_per_s"])
    assert is_number(results["authz"]["in_process"]["batch_per_s"])
    assert is_number(results["authz"]["http"]["single_per_s"]), results["authz"]["http"]
    assert is_number(results["authz"]["http"]["batch_per_s"])
    for key in ("cpu_model", "cpu_count", "ram_gib", "python"):
        assert results["machine"][key], key
    if results["floor"]:
        for floor in results["floor"]:
            assert is_number(floor["per_second"]), floor
            assert floor["broker"] == kind
        assert is_number(results["headline"]["ratio_to_floor_httpx"])
        assert is_number(results["headline"]["ratio_to_floor_aiohttp"])
    else:  # benchmarks/floor.py missing: the run says so instead of a ratio
        assert results["headline"]["floor_note"]
