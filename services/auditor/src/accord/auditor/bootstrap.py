"""Wires the auditor: every topic except its own, and every DLQ."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from accord.auditor import api, handlers
from accord.auditor.settings import AuditorSettings
from accord.events import REGISTRY, topics
from accord.runtime.consumer import Handler, RawHandler
from accord.runtime.service import Runtime, ServiceDefinition


def definition(settings: AuditorSettings) -> ServiceDefinition:
    """The auditor as the runtime runs it."""
    redact = settings.redactions()

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        handler = partial(handlers.handle_event, redact=redact)
        # audit.recorded is the auditor's own output: recording it would loop forever.
        return {spec.type: handler for spec in REGISTRY if spec.type != topics.AUDIT_RECORDED}

    def dead_letters(runtime: Runtime) -> RawHandler:
        return partial(handlers.handle_dead_letter, redact=redact)

    return ServiceDefinition(
        name="auditor",
        http_port=settings.http_port,
        migrations=["accord.auditor.migrations"],
        routes=routes,
        configure_app=api.configure,
        dead_letter_handler=dead_letters,
    )
