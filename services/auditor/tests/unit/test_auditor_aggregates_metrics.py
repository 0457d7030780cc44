"""Prometheus metrics of the aggregates, GET /metrics, and the Grafana dashboard built on them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from accord.auditor.domain.aggregates import Measurement, Observation, Step
from accord.auditor.fakes import AUDITOR_TOKEN, REQUESTER_TOKEN, secured_app
from accord.auditor.metrics import MAX_TARGET_LABELS, AuditorMetrics, mount

DASHBOARD = Path(__file__).resolve().parents[4] / "deploy/grafana/accord-auditor-dashboard.json"


def observation(kind: str, outcome: str, target: str | None = None) -> Observation:
    return Observation(0, 0, kind, outcome, "c-1", target=target)


def fed() -> AuditorMetrics:
    """Metrics with every labelled series present."""
    metrics = AuditorMetrics()
    metrics.observed(observation("user.created", "info"))
    metrics.observed(observation("account.provisioned", "success", "ldap"))
    metrics.observed(observation("account.provision_failed", "failure", "ldap"))
    metrics.observed(observation("provision.requested", "pending", "ldap"))
    measured = (Measurement("c-1", 2500, {"ldap": 2500}), Measurement("c-2", None, {"scim": 700}))
    metrics.stepped(Step(measured=measured, evicted=2, late=True), pending=4)
    metrics.published(1)
    return metrics


def value(metrics: AuditorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_records_attempts_failures_and_latencies_are_counted() -> None:
    metrics = fed()
    assert value(metrics, "accord_audit_records_total", event_type="user.created", outcome="info")
    assert value(metrics, "accord_audit_provisioning_attempts_total", target="ldap") == 2
    assert value(metrics, "accord_audit_provisioning_failures_total", target="ldap") == 1
    assert value(metrics, "accord_audit_joiner_latency_seconds_count") == 1
    assert value(metrics, "accord_audit_joiner_latency_seconds_sum") == 2.5
    assert value(metrics, "accord_audit_joiner_latency_seconds_bucket", le="5.0") == 1
    assert value(metrics, "accord_audit_joiner_latency_seconds_bucket", le="2.0") == 0
    assert value(metrics, "accord_audit_joiner_target_latency_seconds_count", target="scim") == 1
    assert value(metrics, "accord_audit_joiners_evicted_total") == 2
    assert value(metrics, "accord_audit_late_records_total") == 1
    assert value(metrics, "accord_audit_joiners_pending") == 4
    assert value(metrics, "accord_audit_metrics_windows_total") == 1


def test_each_auditor_has_its_own_registry() -> None:
    first, second = fed(), AuditorMetrics()
    assert value(first, "accord_audit_late_records_total") == 1
    assert value(second, "accord_audit_late_records_total") == 0


def test_target_labels_are_bounded() -> None:
    metrics = AuditorMetrics()
    for n in range(MAX_TARGET_LABELS + 5):
        metrics.observed(observation("account.provisioned", "success", f"t{n}"))
    assert value(metrics, "accord_audit_provisioning_attempts_total", target="other") == 5
    assert value(metrics, "accord_audit_provisioning_attempts_total", target="t0") == 1


# --- GET /metrics -----------------------------------------------------------------------------


def app_with(metrics: AuditorMetrics) -> FastAPI:
    app = secured_app()
    mount(app, metrics)
    return app


async def get(app: FastAPI, token: str | None, **headers: str) -> httpx.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/metrics", headers=headers)


async def test_metrics_are_served_to_callers_with_audit_read() -> None:
    app = app_with(fed())
    response = await get(app, AUDITOR_TOKEN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'accord_audit_provisioning_failures_total{target="ldap"} 1.0' in response.text
    assert "# TYPE accord_audit_joiner_latency_seconds histogram" in response.text


async def test_openmetrics_is_served_when_asked_for() -> None:
    accept = "application/openmetrics-text; version=1.0.0, text/plain;q=0.5"
    response = await get(app_with(fed()), AUDITOR_TOKEN, Accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("acc_nope", 401), (REQUESTER_TOKEN, 403)]
)
async def test_metrics_need_audit_read(token: str | None, status: int) -> None:
    response = await get(app_with(fed()), token)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_the_openapi_document_says_what_metrics_answers() -> None:
    operation = app_with(AuditorMetrics()).openapi()["paths"]["/metrics"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403", "429"}
    assert set(operation["responses"]["200"]["content"]) == {
        "text/plain",
        "application/openmetrics-text",
    }
    assert operation["security"]


# --- the Grafana dashboard --------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset"}
_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression uses."""
    labels: set[str] = set()
    for matchers in _MATCHERS.findall(_STRINGS.sub('""', expr)):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in _GROUPING.findall(expr):
        labels |= {name.strip() for name in grouping.split(",") if name.strip()}
    bare = _GROUPING.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub(" ", expr))))
    metrics = set()
    for match in _IDENTIFIER.finditer(bare):
        if bare[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or an operator
        metrics.add(match.group())
    return metrics, labels


def test_the_promql_reader_sees_metrics_and_labels() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, target) (rate(x_bucket{target=~"$t", a!="}"}'
        "[$__rate_interval]))) / on (target) y_total * 60 and z offset 5m"
    )
    assert promql_names(expr) == ({"x_bucket", "y_total", "z"}, {"le", "target", "a"})


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_dashboard_queries_only_what_the_auditor_exposes(dashboard: dict[str, Any]) -> None:
    metrics = fed()
    known_metrics = metrics.metric_names()
    known_labels = {
        label
        for family in metrics.registry.collect()
        for sample in family.samples
        for label in sample.labels
    }
    queries = [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    assert len(queries) >= 10
    for title, expr in queries:
        names, labels = promql_names(expr)
        assert names, (title, expr)
        assert names <= known_metrics, (title, names - known_metrics)
        assert labels <= known_labels, (title, labels - known_labels)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = (
                variable["query"]["query"]
                if isinstance(variable["query"], dict)
                else variable["query"]
            )
            match = _LABEL_VALUES.match(query)
            assert match, query
            assert match.group(1) in known_metrics
            assert match.group(2) in known_labels


def test_the_dashboard_has_the_panels_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    exprs = {
        panel["title"]: [t["expr"] for t in panel.get("targets", [])] for panel in panels(dashboard)
    }
    by_type = exprs["Events per minute by type"]
    assert any("by (event_type)" in e and "accord_audit_records_total" in e for e in by_type)
    assert any("by (outcome)" in e for e in exprs["Records per minute by outcome"])
    assert any(
        "by (target)" in e and "provisioning_failures_total" in e
        for e in exprs["Provisioning failures per minute by target"]
    )
    quantiles = exprs["Joiner provisioning latency (p50 / p90 / p99)"]
    assert [re.search(r"histogram_quantile\(([\d.]+),", e).group(1) for e in quantiles] == [  # type: ignore[union-attr]
        "0.5",
        "0.9",
        "0.99",
    ]
    assert all(
        "accord_audit_joiner_latency_seconds_bucket" in e and "by (le)" in e for e in quantiles
    )


def test_the_dashboard_is_importable_with_any_prometheus(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] == "accord-auditor"
    [source] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (source["name"], source["query"]) == ("datasource", "prometheus")
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
