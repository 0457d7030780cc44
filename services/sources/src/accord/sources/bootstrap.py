"""Wires the sources service: its tables, its projection of the identities, and the runs of
its sources on their schedules and watches. An operator's runs, approvals and rejections go
through `accord sources` (accord.sources.cli) on the same tables; this service's relay
publishes what they enqueue."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from accord.runtime.consumer import Handler
from accord.runtime.service import Runtime, ServiceDefinition
from accord.sources.config import Source, SourcesFile, load_sources
from accord.sources.projection import PROJECTED, project_batch
from accord.sources.runner import RunFailed, RunRefused, run_source
from accord.sources.runs import Trigger
from accord.sources.scheduler import schedule
from accord.sources.settings import SERVICE, SourcesSettings

log = logging.getLogger(__name__)


def read_sources(path: Path | None) -> SourcesFile:
    """The sources of `path` (none without one); a bad file stops the service at start."""
    if path is None:
        return SourcesFile(sources=())
    return load_sources(path.read_text(encoding="utf-8"))


def definition(settings: SourcesSettings) -> ServiceDefinition:
    """The sources service as the runtime runs it."""
    configured = read_sources(settings.sources_file)
    timed = [s for s in configured.sources if s.schedule is not None or s.watch]

    async def run_one(runtime: Runtime, source: Source, trigger: Trigger) -> None:
        try:
            async with runtime.pool.acquire() as conn:
                await run_source(conn, runtime.schema, source, trigger=trigger)
        except RunRefused as error:
            log.warning("source run not started: %s", error, extra={"source": source.name})
        except RunFailed as error:
            log.error("source run failed: %s", error, extra={"source": source.name})
        except Exception:  # one source's bug must not stop the others' schedules
            log.exception("source run crashed", extra={"source": source.name})

    async def runs(runtime: Runtime) -> None:
        if not timed:
            log.info("no scheduled or watched sources")
            await runtime.stopping.wait()
            return

        async def one(source: Source, trigger: Trigger) -> None:
            await run_one(runtime, source, trigger)

        await schedule(timed, one, runtime.stopping, poll_s=settings.watch_poll_s)

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        return {}

    return ServiceDefinition(
        name=SERVICE,
        http_port=settings.http_port,
        migrations=["accord.sources.migrations"],
        routes=routes,
        batch_handler=lambda runtime: project_batch,
        batch_types=PROJECTED,
        background=[runs],
    )
