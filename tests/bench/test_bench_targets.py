"""benchlib.report.targets: issue 24's targets computed from a run's results (pure)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from benchlib.report import per_service, targets

SERVICES = ("orchestrator", "provisioner", "authz", "auditor", "authn")


def phase(cpu: dict[str, float], total: float = 0.0) -> dict[str, Any]:
    return {"cpu_ms_per_joiner": cpu, "cpu_ms_per_joiner_total": total, "sustained_per_s": 100.0}


def results() -> dict[str, Any]:
    """A run that meets every target: every figure just inside its bound."""
    return {
        "broker": {"kind": "kafka", "process": {"pid": 1, "command": "java"}},
        "headline": {
            "ratio_to_floor_httpx": 0.40,
            "light_rate_per_s": 10,
            "light_rate_account_p50_ms": 25.0,
            "light_rate_account_p99_ms": 100.0,
            "max_service_peak_rss_mib": 120.0,
        },
        "phases": {
            "idle": phase({"java": 20.0, "postgres": 5.0, "provisioner": 15.0}, total=40.0),
            "max": phase(
                {
                    "orchestrator": 2.0,
                    "provisioner": 1.5,
                    "authz": 0.5,
                    "auditor": 1.0,
                    "authn": 0.5,
                    "postgres": 2.0,
                    "java": 3.0,
                    "bench-driver": 9.0,
                }
            ),
        },
    }


def by_name(rows: list[dict[str, Any]], start: str) -> dict[str, Any]:
    (row,) = [row for row in rows if row["name"].startswith(start)]
    return row


def test_every_target_met_on_its_bound() -> None:
    rows = targets(results(), SERVICES)

    assert len(rows) == 7
    assert all(row["met"] is True for row in rows), rows
    assert by_name(rows, "CPU per joiner, the 5 services")["measured"] == 5.5
    assert by_name(rows, "Accord sustained / floor")["measured"] == 40.0


@pytest.mark.parametrize(
    ("path", "value", "name"),
    [
        (("headline", "ratio_to_floor_httpx"), 0.39, "Accord sustained / floor"),
        (("headline", "light_rate_account_p50_ms"), 25.1, "publish -> account p50"),
        (("headline", "light_rate_account_p99_ms"), 101.0, "publish -> account p99"),
        (("headline", "max_service_peak_rss_mib"), 121.0, "peak RSS"),
        (("phases", "idle", "cpu_ms_per_joiner_total"), 40.5, "idle CPU"),
        (("phases", "max", "cpu_ms_per_joiner", "postgres"), 2.1, "CPU per joiner, PostgreSQL"),
        (("phases", "max", "cpu_ms_per_joiner", "authn"), 0.6, "CPU per joiner, the 5"),
    ],
)
def test_a_figure_past_its_bound_is_not_met(path: tuple[str, ...], value: float, name: str) -> None:
    run = results()
    *parents, key = path
    holder = run
    for part in parents:
        holder = holder[part]
    holder[key] = value

    rows = targets(run, SERVICES)

    assert by_name(rows, name)["met"] is False
    assert [row["name"] for row in rows if row["met"] is False] == [by_name(rows, name)["name"]]


def test_second_instances_count_towards_their_service() -> None:
    run = results()
    run["phases"]["max"]["cpu_ms_per_joiner"]["provisioner-2"] = 0.25

    assert per_service(run["phases"]["max"]["cpu_ms_per_joiner"], SERVICES)["provisioner"] == 1.75
    assert by_name(targets(run, SERVICES), "CPU per joiner, the 5")["met"] is False


def test_parts_the_run_did_not_watch_are_not_measured() -> None:
    """The smoke test's shared broker and PostgreSQL: no idle figure of the whole platform."""
    run = results()
    run["broker"]["process"] = None
    del run["phases"]["max"]["cpu_ms_per_joiner"]["postgres"]
    run["headline"]["ratio_to_floor_httpx"] = None

    rows = targets(run, SERVICES)

    for name in ("idle CPU", "CPU per joiner, PostgreSQL", "Accord sustained / floor"):
        assert by_name(rows, name)["met"] is None
        assert by_name(rows, name)["measured"] is None
    assert by_name(rows, "peak RSS")["met"] is True


def test_no_max_phase_leaves_the_cpu_targets_unmeasured() -> None:
    run = copy.deepcopy(results())
    del run["phases"]["max"]

    rows = targets(run, SERVICES)

    assert by_name(rows, "CPU per joiner, the 5")["met"] is None
    assert by_name(rows, "CPU per joiner, PostgreSQL")["met"] is None
