"""A real Prometheus scrapes the running platform with Accord's alert rules: a malformed
event raises AccordDeadLetter, a target outage raises AccordCircuitOpen, and both resolve,
as Prometheus's HTTP API tells.

Prometheus scrapes and evaluates every second, with the rules of deploy/prometheus/alerts.yml
time-scaled (every `for` and range window divided by SCALE: the circuit's 10 minutes are
10 s, the dead letter's 5-minute window 5 s); `promtool test rules` (tests/deploy) checks
the real durations. It scrapes with an API token of the auditor role (audit:read), as the
deployment docs advise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from accord.events import Publisher, UserCreated, topics
from accord.runtime.security.roles import Role
from accord.stack.errors import StartupError
from accord.stack.platform import SERVICES, Platform
from accord.stack.prometheus_server import PrometheusServer, prometheus_executable, scaled_rules

from .conftest import (
    OUTAGE_DEPARTMENT,
    Outage,
    accord_cli,
    eventually,
    joiner_saga,
    publish_user_created_without_user_name,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCALE = 60
OUTAGE_TARGET = "scim-outage"


@pytest_asyncio.fixture(loop_scope="session")
async def prometheus(platform: Platform, tmp_path: Path) -> AsyncIterator[PrometheusServer]:
    try:
        prometheus_executable()
    except StartupError as error:
        if os.environ.get("ACCORD_REQUIRE_PROMTOOL") == "1":  # CI: Prometheus is installed
            pytest.fail(f"{error} (ACCORD_REQUIRE_PROMTOOL=1)")
        pytest.skip(str(error))
    rules = tmp_path / "alerts.yml"
    rules.write_text(scaled_rules(RULES.read_text(), SCALE))
    token = await platform.issue_token("prometheus", {Role.AUDITOR}, "e2e alert test")
    jobs = {
        f"accord-{service}": url.removeprefix("http://")
        for service, url in platform.endpoints().items()
        if service in SERVICES
    }
    async with PrometheusServer(
        tmp_path / "prometheus", jobs, bearer_token=token, rule_files=[rules]
    ) as server:
        yield server


async def alerts_named(prometheus: PrometheusServer, name: str, **labels: str) -> list[Any]:
    """The pending or firing alerts of that name whose labels include `labels`."""
    return [
        alert
        for alert in await prometheus.alerts()
        if alert["labels"].get("alertname") == name
        and all(alert["labels"].get(k) == v for k, v in labels.items())
    ]


async def firing(prometheus: PrometheusServer, name: str, **labels: str) -> list[Any]:
    found = await alerts_named(prometheus, name, **labels)
    return [alert for alert in found if alert["state"] == "firing"]


async def quiet(prometheus: PrometheusServer, name: str, **labels: str) -> bool:
    return not await alerts_named(prometheus, name, **labels)


async def gauge(prometheus: PrometheusServer, expr: str) -> float | None:
    result = await prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


async def test_dead_letter_and_circuit_alerts_fire_and_resolve_in_a_real_prometheus(
    platform: Platform,
    prometheus: PrometheusServer,
    outage: Outage,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    async def all_up() -> bool:
        targets = await prometheus.targets()
        return len(targets) == len(SERVICES) and all(t["health"] == "up" for t in targets)

    await eventually(all_up, what="Prometheus scraping every service")
    closed = f'accord_circuit_open{{job="accord-provisioner",target="{OUTAGE_TARGET}"}}'
    await eventually(lambda: prometheus.query(closed), what="the circuit's gauge scraped")
    assert await gauge(prometheus, closed) == 0
    # Nothing firing before: earlier tests' dead letters have left the (scaled) window.
    await eventually(
        lambda: quiet(prometheus, "AccordDeadLetter", topic=topics.USER_CREATED),
        timeout=60,
        what="no dead-letter alert on user.created to begin with",
    )
    assert await quiet(prometheus, "AccordCircuitOpen", target=OUTAGE_TARGET)

    # A malformed event: every group reading user.created dead-letters it, and says so.
    await publish_user_created_without_user_name(
        kafka_bootstrap, f"alert-bad-{unique}", str(uuid.uuid4())
    )
    fired = await eventually(
        lambda: firing(
            prometheus, "AccordDeadLetter", topic=topics.USER_CREATED, job="accord-orchestrator"
        ),
        what="AccordDeadLetter firing for the orchestrator's user.created",
    )
    assert fired[0]["labels"]["severity"] == "warning"
    assert fired[0]["annotations"]["runbook_url"].endswith("AccordDeadLetter.md")

    # The outage target goes down: a joiner's calls open its circuit, which stays open.
    await outage.proxy.down(600)
    user = UserCreated(
        user_id=f"alert-{unique}",
        user_name=f"alert.{unique}",
        given_name="Ada",
        family_name="Lovelace",
        department=OUTAGE_DEPARTMENT,
    )
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(user, sequence=1)

    async def circuit(value: float) -> bool:
        return await gauge(prometheus, closed) == value

    await eventually(lambda: circuit(1), timeout=60, what="the outage target's circuit open")
    circuit_alert = await eventually(
        lambda: firing(prometheus, "AccordCircuitOpen", target=OUTAGE_TARGET),
        timeout=90,
        what="AccordCircuitOpen firing for the outage target",
    )
    assert circuit_alert[0]["labels"]["severity"] == "warning"
    # Meanwhile the user.created window passed without another dead letter: resolved.
    assert await quiet(prometheus, "AccordDeadLetter", topic=topics.USER_CREATED)

    # The target comes back: the breaker's trial succeeds, the circuit closes, the alert
    # resolves; the joiner's saga is brought back as the runbook says.
    await outage.proxy.up()
    await eventually(lambda: circuit(0), timeout=60, what="the circuit closed again")
    await eventually(
        lambda: quiet(prometheus, "AccordCircuitOpen", target=OUTAGE_TARGET),
        timeout=30,
        what="AccordCircuitOpen resolved",
    )

    async def settled() -> dict[str, Any] | None:
        found = await joiner_saga(platform, user.user_id)
        return found if found and found["status"] in ("completed", "failed") else None

    saga = await eventually(settled, timeout=60, what="the joiner's saga settled")
    if saga["status"] == "failed":  # its retry rounds ran out during the outage
        code, _, err = await accord_cli(platform, "sagas", "retry", saga["saga_id"])
        assert code == 0, err

    async def completed() -> bool:
        found = await joiner_saga(platform, user.user_id)
        return found is not None and found["status"] == "completed"

    await eventually(completed, timeout=60, what="the joiner's saga completed after the outage")
