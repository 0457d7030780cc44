"""Turns the results dict into the readable table (results.md, also printed) and saves both."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from benchlib.brokers import describe_waits

LATENCIES = (
    ("publish_to_account", "publish -> account.provisioned (event time)"),
    ("publish_to_account_seen", "publish -> account.provisioned (seen by the bench)"),
    ("publish_to_saga_completed", "publish -> saga.completed (event time)"),
    ("publish_to_audited", "publish -> whole flow in the audit log (seen)"),
)


def _num(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def headline(
    results: dict[str, Any], services: tuple[str, ...], flow_events: int
) -> dict[str, Any]:
    """The figures the issue sets targets for (`services`: label prefixes of service processes;
    `flow_events`: audit records per joiner)."""
    phases = results["phases"]
    sustained = phases.get("max", {}).get("sustained_per_s")
    floors = {f.get("http_client"): f.get("per_second") for f in results.get("floor", [])}

    def ratio(floor: float | None) -> float | None:
        if not sustained or not floor:
            return None
        return round(float(sustained) / floor, 4)

    peaks = {
        label: mib
        for label, mib in results.get("peak_memory_mib", {}).items()
        if label.startswith(services) and mib is not None
    }
    biggest = max(peaks, key=lambda label: peaks[label]) if peaks else None
    fixed = phases.get("fixed-rate", {}).get("latency_ms", {}).get("publish_to_account", {})
    light = phases.get("light", {}).get("latency_ms", {}).get("publish_to_account", {})
    fixed_rate = results["settings"]["counts"]["fixed_rate"]
    return {
        "broker": (results.get("broker") or {}).get("kind"),
        "sustained_per_s": sustained,
        "sustained_two_instances_per_s": phases.get("max-2x", {}).get("sustained_per_s"),
        "sustained_free_target_per_s": phases.get("max-free", {}).get("sustained_per_s"),
        "floor_httpx_per_s": floors.get("httpx"),
        "floor_aiohttp_per_s": floors.get("aiohttp"),
        "ratio_to_floor_httpx": ratio(floors.get("httpx")),
        "ratio_to_floor_aiohttp": ratio(floors.get("aiohttp")),
        "floor_note": results.get("floor_note"),
        "fixed_rate_per_s": fixed_rate,
        "fixed_rate_above_capacity": bool(sustained and fixed_rate > sustained),
        "light_rate_per_s": results["settings"]["counts"]["light_rate"],
        "light_rate_account_p50_ms": light.get("p50"),
        "light_rate_account_p99_ms": light.get("p99"),
        "fixed_rate_account_p50_ms": fixed.get("p50"),
        "fixed_rate_account_p99_ms": fixed.get("p99"),
        "max_service_peak_rss_mib": peaks.get(biggest) if biggest else None,
        "max_service_peak_rss_name": biggest,
        "flow_audit_records_per_s_at_max": round(sustained * flow_events, 1) if sustained else None,
    }


def render(results: dict[str, Any]) -> str:
    """The whole report as Markdown tables."""
    head = results["headline"]
    machine = results["machine"]
    broker = results["broker"]
    lines = [
        f"# Accord end-to-end benchmark on {broker['kind']}, {results['started_utc']}"
        + (" (SMOKE: tiny counts, figures meaningless)" if results["smoke"] else ""),
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, {machine['ram_gib']} GiB"
        f" RAM, Python {machine['python']}, commit {(machine['git_commit'] or '?')[:12]}"
        f"{' (dirty)' if machine['git_dirty'] else ''}. Run took {results['elapsed_s']:.0f} s.",
        f"Broker: **{broker['name']}** ({broker['kind']}); producers"
        f" {'idempotent, ' if broker['idempotent_producer'] else ''}acks=all. The floor ran on"
        " the same broker. Everything (broker, PostgreSQL, scim2-server, 5 services, load"
        " generator) on this one machine.",
        f"Fetch waits in effect: {describe_waits(results['settings']['fetch_waits'])}; the"
        f" benchmark's tracker {results['settings']['tracker_fetch_max_wait_ms']} ms.",
        "",
        "## Headline (the targets of issue 24 follow)",
        "",
    ]
    rss_peak = head["max_service_peak_rss_mib"]
    lines += _table(
        ["figure", "measured"],
        [
            [
                "sustained joiners/s, end to end (1 provisioner)",
                _num(head["sustained_per_s"], 1),
            ],
            [
                "sustained joiners/s, end to end (2 instances of each service)",
                _num(head["sustained_two_instances_per_s"], 1),
            ],
            [
                "floor events/s (httpx / aiohttp)",
                f"{_num(head['floor_httpx_per_s'], 0)} / {_num(head['floor_aiohttp_per_s'], 0)}",
            ],
            [
                "**Accord / floor (httpx)**",
                _num(_pct(head["ratio_to_floor_httpx"]), 1, " %"),
            ],
            [
                "Accord / floor (aiohttp)",
                _num(_pct(head["ratio_to_floor_aiohttp"]), 1, " %"),
            ],
            [
                f"p50 publish -> account at {_num(head['fixed_rate_per_s'])}/s",
                _num(head["fixed_rate_account_p50_ms"], 1, " ms"),
            ],
            [
                f"p99 publish -> account at {_num(head['fixed_rate_per_s'])}/s",
                _num(head["fixed_rate_account_p99_ms"], 1, " ms"),
            ],
            [
                f"p50 / p99 publish -> account at {_num(head['light_rate_per_s'])}/s (light load)",
                f"{_num(head['light_rate_account_p50_ms'], 1)} / "
                f"{_num(head['light_rate_account_p99_ms'], 1)} ms",
            ],
            [
                f"largest peak RSS of a service ({head['max_service_peak_rss_name']})",
                _num(rss_peak, 0, " MiB"),
            ],
        ],
    )
    if head.get("fixed_rate_above_capacity"):
        lines += [
            f"{_num(head['fixed_rate_per_s'])}/s is more than the"
            f" {_num(head['sustained_per_s'], 1)} joiners/s the platform sustains here:"
            " latency at that rate is a growing queue and depends on how long the phase lasts."
            " The light and near-sat phases show latency below saturation.",
            "",
        ]
    if head.get("floor_note"):
        lines += [f"Floor: {head['floor_note']}", ""]
    if results.get("free_target_note"):
        lines += [f"Near-free target (max-free): {results['free_target_note']}.", ""]
    lines += _targets(results.get("targets", []))
    lines += _phases(results["phases"])
    lines += _cpu(results["phases"])
    lines += _scaling(results)
    lines += ["## Peak memory (MiB)", ""]
    lines += _table(
        ["process", "peak"],
        [[label, _num(mib, 1)] for label, mib in results["peak_memory_mib"].items()],
    )
    lines += [
        "Services, broker, scim2-server: VmHWM (Apache Kafka's: the whole JVM, heap included)."
        " postgres: largest sampled sum of Pss over the postmaster and its backends (1 s"
        " sampling).",
        "",
    ]
    lines += _side(results)
    lines += _profiles(results.get("profiles", {}))
    return "\n".join(lines)


def per_service(cpu_ms: dict[str, float], services: tuple[str, ...]) -> dict[str, float]:
    """CPU per joiner of each service summed over its instances (`provisioner`,
    `provisioner-2`, ...), from one phase's per-process figures."""
    sums: dict[str, float] = {}
    for label, ms in cpu_ms.items():
        name, _, instance = label.partition("-")
        if name in services and (not instance or instance.isdigit()):
            sums[name] = round(sums.get(name, 0.0) + ms, 3)
    return sums


SATURATION = "max"
"""The phase the CPU targets are read from: every joiner at once, the platform saturated."""


def targets(results: dict[str, Any], services: tuple[str, ...]) -> list[dict[str, Any]]:
    """Issue 24's targets on the run's figures: name, target (a bound), measured, unit and
    met (None: not measured here). CPU per joiner is the `max` phase's, per process as the
    phase recorded it; the idle CPU counts only when the run watched the whole platform
    (its own broker and PostgreSQL: not so on the end-to-end tests' shared ones)."""
    head = results["headline"]
    phases = results["phases"]
    at_max = phases.get(SATURATION, {}).get("cpu_ms_per_joiner", {})
    services_ms = per_service(at_max, services)
    idle = phases.get("idle", {})
    whole = bool((results.get("broker") or {}).get("process")) and "postgres" in idle.get(
        "cpu_ms_per_joiner", {}
    )
    ratio = head.get("ratio_to_floor_httpx")
    rows = [
        ("Accord sustained / floor (httpx)", ">=", 40.0, _pct(ratio), "%"),
        (
            f"CPU per joiner, the {len(services)} services together ({SATURATION})",
            "<=",
            5.5,
            round(sum(services_ms.values()), 3) if services_ms else None,
            "ms",
        ),
        (f"CPU per joiner, PostgreSQL ({SATURATION})", "<=", 2.0, at_max.get("postgres"), "ms"),
        (
            f"publish -> account p50 at {_num(head.get('light_rate_per_s'))}/s",
            "<=",
            25.0,
            head.get("light_rate_account_p50_ms"),
            "ms",
        ),
        (
            f"publish -> account p99 at {_num(head.get('light_rate_per_s'))}/s",
            "<=",
            100.0,
            head.get("light_rate_account_p99_ms"),
            "ms",
        ),
        (
            "idle CPU of the whole platform",
            "<=",
            40.0,
            idle.get("cpu_ms_per_joiner_total") if whole else None,
            "ms/s",
        ),
        (
            "peak RSS of any one service",
            "<=",
            120.0,
            head.get("max_service_peak_rss_mib"),
            "MiB",
        ),
    ]
    return [
        {
            "name": name,
            "target": f"{bound} {limit:g} {unit}",
            "measured": None if value is None else round(float(value), 3),
            "unit": unit,
            "met": None if value is None else (value >= limit if bound == ">=" else value <= limit),
        }
        for name, bound, limit, value, unit in rows
    ]


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "not met"


def targets_text(rows: list[dict[str, Any]]) -> str:
    """The targets as plain text, one line each (printed at the end of a run)."""
    width = max((len(row["name"]) for row in rows), default=0)
    lines = ["Targets (issue 24):"]
    for row in rows:
        measured = "-" if row["measured"] is None else f"{row['measured']:,.2f} {row['unit']}"
        lines.append(
            f"  {row['name']:<{width}}  {measured:>14}  {row['target']:<12} {_verdict(row['met'])}"
        )
    return "\n".join(lines)


def _targets(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["## Targets (issue 24)", ""]
    lines += _table(
        ["figure", "measured", "target", "met"],
        [
            [
                row["name"],
                _num(row["measured"], 2, f" {row['unit']}"),
                row["target"],
                "**not met**" if row["met"] is False else _verdict(row["met"]),
            ]
            for row in rows
        ],
    )
    lines += [
        "CPU per joiner from the `max` phase (saturation). Not measured: the figure needs a"
        " part this run did not watch (the smoke test's shared broker and PostgreSQL) or a"
        " phase it did not run.",
        "",
    ]
    return lines


SCALING = (
    ("max", "1 instance"),
    ("max-2x", "2 instances"),
    ("max-free", "2 instances, free target"),
)


def _scaling(results: dict[str, Any]) -> list[str]:
    phases = results["phases"]
    shown = [(name, title) for name, title in SCALING if name in phases]
    if len(shown) < 2:
        return []
    services = tuple(results.get("services") or ())
    sums = {name: per_service(phases[name]["cpu_ms_per_joiner"], services) for name, _ in shown}
    others: list[str] = []
    for name, _ in shown:
        for label in phases[name]["cpu_ms_per_joiner"]:
            if label not in others and not per_service({label: 0.0}, services):
                others.append(label)
    rows = [[s] + [_num(sums[name].get(s), 2) for name, _ in shown] for s in services]
    rows.append(
        ["**services together**"]
        + [_num(sum(sums[name].values()) if sums[name] else None, 2) for name, _ in shown]
    )
    rows += [
        [label] + [_num(phases[name]["cpu_ms_per_joiner"].get(label), 2) for name, _ in shown]
        for label in others
    ]
    rows.append(["**total**"] + [_num(phases[n]["cpu_ms_per_joiner_total"], 2) for n, _ in shown])
    rows.append(["sustained joiners/s"] + [_num(phases[n]["sustained_per_s"], 1) for n, _ in shown])
    lines = ["## One vs two instances of each service, and the near-free target", ""]
    lines += _table(["CPU ms per joiner", *(f"{n} ({t})" for n, t in shown)], rows)
    lines += [
        "A service's CPU sums its instances. `max-free` points both provisioners at an"
        " in-memory SCIM target (benchlib/free_target.py, its own process: `free-target`)"
        " instead of scim2-server: the engine's own ceiling on this machine.",
        "",
    ]
    return lines


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None else ratio * 100


def _phases(phases: dict[str, Any]) -> list[str]:
    lines = ["## Phases", ""]
    rows = []
    for name, p in phases.items():
        rows.append(
            [
                name,
                p["description"],
                _num(p["joiners"]),
                f"{p['done']}/{p['failed']}/{p['incomplete']}",
                _num(p["offered_per_s"], 1),
                _num(p["sustained_per_s"], 1),
                _num(p["wall_s"], 1),
            ]
        )
    lines += _table(
        [
            "phase",
            "what",
            "joiners",
            "done/failed/incomplete",
            "offered/s",
            "sustained/s e2e",
            "wall s",
        ],
        rows,
    )
    lines += ["### Latency (ms): p50 / p90 / p99 / max", ""]
    rows = []
    for name, p in phases.items():
        if not p["joiners"]:
            continue
        for key, title in LATENCIES:
            s = p["latency_ms"][key]
            rows.append(
                [
                    name,
                    title,
                    " / ".join(_num(s[q], 0) for q in ("p50", "p90", "p99", "max")),
                    _num(s["count"]),
                ]
            )
    lines += _table(["phase", "latency", "p50 / p90 / p99 / max", "samples"], rows)
    lines += [
        "Burst phases publish every joiner at once: their latencies are mostly queueing and",
        "say how long the backlog took, not how fast one joiner goes.",
        "",
    ]
    return lines


def _cpu(phases: dict[str, Any]) -> list[str]:
    labels: list[str] = []
    for p in phases.values():
        labels += [label for label in p["cpu_ms_per_joiner"] if label not in labels]
    lines = ["## CPU time per joiner (ms), by process and phase", ""]
    rows = []
    for label in labels:
        rows.append([label] + [_num(p["cpu_ms_per_joiner"].get(label), 2) for p in phases.values()])
    rows.append(["**total**"] + [_num(p["cpu_ms_per_joiner_total"], 2) for p in phases.values()])
    rows.append(["cores busy (avg)"] + [_num(p["cores_busy"], 2) for p in phases.values()])
    lines += _table(["process", *phases], rows)
    lines += [
        "CPU of a process includes its threads, reaped children and live descendants"
        " (PostgreSQL backends). `bench-driver` is the load generator and tracker itself;"
        " the idle phase shows ms per second instead of per joiner.",
        "",
    ]
    return lines


def _side(results: dict[str, Any]) -> list[str]:
    lines = ["## Audit log, authz, floor, target check", ""]
    audit = results.get("audit_log") or {}
    cli = audit.get("cli_verify") or {}
    authz = results.get("authz") or {}
    http = authz.get("http") or {}
    local = authz.get("in_process") or {}
    rows = [
        ["audit records stored/s (batches of 500)", _num(audit.get("stored_batched_per_s"))],
        [
            "audit records stored/s (one per transaction)",
            _num(audit.get("stored_one_per_transaction_per_s")),
        ],
        [
            "audit verify, s per 100,000 records (in process)",
            _num(audit.get("verify_seconds_per_100k"), 2),
        ],
        [
            "`accord audit verify`, s per 100,000 records (CLI's report)",
            _num(cli.get("seconds_per_100k"), 2),
        ],
        [
            "`accord audit verify` wall time incl. process start, s",
            _num(cli.get("wall_seconds"), 2),
        ],
        ["authz decisions/s in process, single (entity list)", _num(local.get("single_per_s"))],
        ["authz decisions/s in process, batch of 100", _num(local.get("batch_per_s"))],
        ["authz decisions/s over HTTP, single", _num(http.get("single_per_s"))],
        ["authz decisions/s over HTTP, batch of 100", _num(http.get("batch_per_s"))],
        [
            "flow audit records/s the auditor kept up with in `max` (5 per joiner)",
            _num(results["headline"].get("flow_audit_records_per_s_at_max"), 1),
        ],
    ]
    for floor in results.get("floor", []):
        client = floor.get("http_client")
        if "error" in floor:
            rows.append([f"floor, {client}", floor["error"][:80]])
            continue
        rows.append(
            [
                f"floor, {client}: events/s (concurrency {floor.get('concurrency')})",
                _num(floor.get("per_second")),
            ]
        )
        rows.append(
            [
                f"floor, {client}: CPU ms per event (its process + broker, postgres, scim2-server)",
                _num(floor_cpu_ms(floor), 2),
            ]
        )
    check = results.get("target_check") or {}
    rows.append(
        [
            "SCIM target: accounts of the run / joiners published / missing / duplicated",
            f"{check.get('accounts', '-')} / {check.get('published', '-')} / "
            f"{check.get('missing', '-')} / {check.get('duplicated', '-')}",
        ]
    )
    return lines + _table(["figure", "value"], rows)


def floor_cpu_ms(floor: dict[str, Any]) -> float | None:
    """CPU ms per event of a floor run: its own process and the parts it used."""
    events = floor.get("events")
    if not events or floor.get("cpu_seconds") is None:
        return None
    parts = sum((floor.get("parts_cpu_seconds") or {}).values())
    per_event: float = (float(floor["cpu_seconds"]) + parts) * 1000 / events
    return round(per_event, 3)


def _profiles(profiles: dict[str, Any]) -> list[str]:
    if not profiles:
        return []
    lines = [
        "## Profiles: top 10 frames by self time, % of busy samples (full lists, inclusive",
        "times and the raw stacks in profile-*.txt)",
        "",
    ]
    for service, top in profiles.items():
        if "error" in top:
            lines += [f"{service}: {top['error']}", ""]
            continue
        busy = top["busy"] or 1
        rows = [[f"{100 * row['samples'] / busy:.1f}", row["frame"]] for row in top["self"][:10]]
        lines += [
            f"### {service}: {top['busy']} busy samples ({top['waiting']} waiting left out)",
            "",
        ]
        lines += _table(["% self", "frame"], rows)
    return lines


def save(results: dict[str, Any], folder: Path) -> str:
    """Write results.json and results.md into folder, point `latest` at it; returns the text."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = render(results)
    (folder / "results.md").write_text(text + "\n")
    latest = folder.parent / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.is_dir():
        shutil.rmtree(latest)
    try:
        os.symlink(folder.name, latest)
    except OSError:  # a file system without symlinks: a copy then
        shutil.copytree(folder, latest)
    return text
