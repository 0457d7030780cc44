"""A real Prometheus server (Debian's `prometheus` package) scraping a running platform and
evaluating Accord's alert rules, with its HTTP API to read what it concluded.

The e2e tests use it to see the alerts fire and resolve on live metrics. Rules whose `for`
and range windows are meant for production (minutes, an hour) can be loaded time-scaled
(`scaled_rules`): every duration in the rules divided by one factor, the expressions
otherwise untouched; `promtool test rules` checks the real durations.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from accord.stack.errors import StartupError
from accord.stack.lifecycle import Startable
from accord.stack.network import free_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 30.0
_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_RANGE = re.compile(r"\[(\d+)(ms|s|m|h|d|w)\]")


def prometheus_executable() -> str:
    """The prometheus server on the PATH (Debian: /usr/bin/prometheus)."""
    found = shutil.which("prometheus")
    if found is None:
        raise StartupError("prometheus is missing: `make prometheus` installs Debian's package")
    return found


def duration_s(text: str) -> float:
    """A Prometheus duration of one unit (`5m`, `90s`) in seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a simple Prometheus duration: {text!r}")
    return int(match[1]) * _UNITS_S[match[2]]


def _scaled(seconds: float, factor: float) -> str:
    return f"{max(1, round(seconds / factor))}s"


def scaled_rules(rules: str, factor: float) -> str:
    """The rule file with every `for` and every range selector (`[5m]`) divided by factor
    (at least 1 s); expressions, labels and annotations unchanged."""
    document = yaml.safe_load(rules)
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _scaled(duration_s(rule["for"]), factor)
            rule["expr"] = _RANGE.sub(
                lambda m: f"[{_scaled(int(m[1]) * _UNITS_S[m[2]], factor)}]", str(rule["expr"])
            )
    return yaml.safe_dump(document, sort_keys=False)


class PrometheusServer(Startable):
    """Prometheus on 127.0.0.1 scraping `jobs` (job name -> host:port) every
    `interval_s`, with a bearer token file, evaluating `rule_files` as often."""

    def __init__(
        self,
        home: Path,
        jobs: Mapping[str, str],
        *,
        bearer_token: str | None = None,
        rule_files: Sequence[Path] = (),
        interval_s: int = 1,
    ) -> None:
        self.home = home
        self.jobs = dict(jobs)
        self.port = free_port(_HOST)
        self._token = bearer_token
        self._rule_files = list(rule_files)
        self._interval = f"{interval_s}s"
        self._process: ManagedProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    def config(self) -> dict[str, Any]:
        """prometheus.yml: one job per service, as compose's Prometheus has them."""
        auth = {}
        if self._token is not None:
            token_file = self.home / "scrape-token"
            token_file.write_text(self._token)
            token_file.chmod(0o600)
            auth = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
        return {
            "global": {
                "scrape_interval": self._interval,
                "scrape_timeout": self._interval,
                "evaluation_interval": self._interval,
            },
            "rule_files": [str(path) for path in self._rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": "/metrics",
                    **auth,
                    "static_configs": [{"targets": [address]}],
                }
                for job, address in self.jobs.items()
            ],
        }

    async def start(self) -> None:
        """Write the configuration, start the server and wait until it is ready."""
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [
            prometheus_executable(),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address={_HOST}:{self.port}",
            "--log.level=warn",
        ]
        self._process = ManagedProcess("prometheus", argv, log_path=self.home / "prometheus.log")
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:

            async def probe() -> None:
                (await client.get("/-/ready")).raise_for_status()

            seconds = await start_and_wait(
                self._process, probe, timeout=_STARTUP_TIMEOUT, what="Prometheus"
            )
        _logger.info("Prometheus ready at %s in %.2f s", self.base_url, seconds)

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()

    async def _get(self, path: str, **params: str) -> Any:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            response = await client.get(path, params=params)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus answered {body}")
        return body["data"]

    async def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now (GET /api/v1/alerts); resolved ones are gone."""
        data = await self._get("/api/v1/alerts")
        alerts: list[dict[str, Any]] = data["alerts"]
        return alerts

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (GET /api/v1/query)."""
        data = await self._get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets and their health (GET /api/v1/targets)."""
        data = await self._get("/api/v1/targets", state="active")
        targets: list[dict[str, Any]] = data["activeTargets"]
        return targets
