"""accord.stack.prometheus_server: the time-scaled rules the e2e alert test loads, and the
configuration its Prometheus scrapes with."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from accord.stack.prometheus_server import PrometheusServer, duration_s, scaled_rules

RULES = """
groups:
  - name: g
    rules:
      - alert: Lagging
        expr: lag > 100 and deriv(lag[5m]) > 0
        for: 10m
        labels: {severity: warning}
        annotations: {summary: "for [5m] stays in text"}
      - alert: Verify
        expr: increase(failures_total[1h]) > 0
      - record: job:lag:sum
        expr: sum by (job) (lag[30s])
"""


def test_durations_of_one_unit_are_read() -> None:
    assert duration_s("5m") == 300
    assert duration_s("1h") == 3600
    assert duration_s("250ms") == 0.25
    with pytest.raises(ValueError, match="not a simple Prometheus duration"):
        duration_s("1h30m")


def test_every_for_and_range_is_divided_and_the_rest_kept() -> None:
    rules = yaml.safe_load(scaled_rules(RULES, 30))["groups"][0]["rules"]
    assert rules[0]["for"] == "20s"
    assert rules[0]["expr"] == "lag > 100 and deriv(lag[10s]) > 0"
    assert rules[0]["annotations"]["summary"] == "for [5m] stays in text"
    assert rules[0]["labels"] == {"severity": "warning"}
    assert rules[1]["expr"] == "increase(failures_total[120s]) > 0"
    # Never below a second.
    assert rules[2]["expr"] == "sum by (job) (lag[1s])"


def test_each_service_is_a_job_scraped_with_the_token_file(tmp_path: Path) -> None:
    server = PrometheusServer(
        tmp_path,
        {"accord-auditor": "127.0.0.1:8704", "accord-authz": "127.0.0.1:8703"},
        bearer_token="secret-token",
        rule_files=[tmp_path / "alerts.yml"],
    )
    config = server.config()
    assert config["global"]["evaluation_interval"] == "1s"
    assert config["rule_files"] == [str(tmp_path / "alerts.yml")]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["accord-authz"]["static_configs"] == [{"targets": ["127.0.0.1:8703"]}]
    token_file = Path(jobs["accord-auditor"]["authorization"]["credentials_file"])
    assert token_file.read_text() == "secret-token"
    assert token_file.stat().st_mode & 0o077 == 0
    assert "secret-token" not in yaml.safe_dump(config)
