"""One workflow-enabled platform for the modules of this package: the six services on a
Tansu broker and a database of their own, the orchestrator running the workflow folder
(folder.py), an SMTP sink, the leaver's mailbox extension and the flaky target. Started
once for the package (it takes as long as a test or two), stopped after its last test; the
modules keep out of each other's way by their identities' ids and by the workflows' scopes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from accord.events import Publisher
from accord.events.brokers import BROKER_ENV
from accord.stack.fault_proxy import FaultProxy
from accord.stack.platform import DepartmentTarget, Platform, PlatformConfig
from accord.stack.scim_target import ScimTarget
from accord.stack.smtp_sink import SmtpSink
from accord.stack.testing import create_database

from ..conftest import running
from .extension import SECRET, SECRET_ENV, MailboxExtension
from .folder import FLAKY_DEPARTMENT, FLAKY_TARGET, workflow_files

SENDER = "accord-workflows@example.com"


@dataclass(frozen=True)
class Flaky:
    """The target the target-down test takes down: a scim2-server of its own behind a
    fault proxy, declared with one attempt per request and a breaker that stays closed."""

    upstream: ScimTarget
    proxy: FaultProxy

    def target(self) -> DepartmentTarget:
        return DepartmentTarget(
            name=FLAKY_TARGET,
            url=f"{self.proxy.base_url}/v2",
            token=self.upstream.bearer_token,
            department=FLAKY_DEPARTMENT,
            max_attempts=1,
            breaker_threshold=1000,
        )


@dataclass(frozen=True)
class Parts:
    platform: Platform
    sink: SmtpSink
    extension: MailboxExtension
    flaky: Flaky


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def parts(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Parts]:
    """The six services on a Tansu broker and a database of their own, the orchestrator
    with the workflow folder (timers looked at every 0.2 s), an SMTP sink, the mailbox
    extension and the flaky target."""
    home = Path(tmp_path_factory.mktemp("workflows-platform"))
    folder = home / "workflows"
    folder.mkdir()
    extension = MailboxExtension()
    for name, text in workflow_files(extension.url).items():
        (folder / f"{name}.yaml").write_text(text)
    sink = SmtpSink(home / "smtp")
    (home / "flaky").mkdir()
    upstream = ScimTarget(log_dir=home / "flaky")
    flaky = Flaky(upstream, FaultProxy(upstream.base_url))
    await sink.start()
    await extension.start()
    await flaky.proxy.start()
    await upstream.start()
    config = PlatformConfig.ephemeral(
        home,
        broker="tansu",
        database_url=await create_database(postgres_server, "accord_wf"),
        department_targets=[flaky.target()],
    )
    orchestrator = f"http://127.0.0.1:{config.service_ports['orchestrator']}"
    config.extra_env = {
        "ACCORD_LOG_LEVEL": "INFO",
        "ACCORD_WORKFLOWS_DIR": str(folder),
        "ACCORD_TIMER_POLL_S": "0.2",
        "ACCORD_WORKFLOW_CALLBACK_URL": orchestrator,
        SECRET_ENV: SECRET.decode(),
        # revoke_entitlement asks authz's grants API, as the admin (read at each call).
        "ACCORD_AUTHZ_URL": f"http://127.0.0.1:{config.service_ports['authz']}",
        "ACCORD_AUTHZ_TOKEN_FILE": str(config.home / "admin-token"),
        **sink.env(sender=SENDER),
    }
    try:
        async with running(config, " with the workflow folder") as platform:
            yield Parts(platform, sink, extension, flaky)
    finally:
        await flaky.proxy.stop()
        await upstream.stop()
        await extension.stop()
        await sink.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def hr(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Publisher]:
    """The HR system's publisher on the test platform's broker."""
    monkeypatch.setenv(BROKER_ENV, parts.platform.config.broker)
    async with Publisher(
        source="urn:test:hr", bootstrap_servers=parts.platform.bootstrap_servers
    ) as publisher:
        yield publisher
