"""`accord --help` and every simple command answer at once: building the parser, with every
installed `accord.cli` plugin, imports no heavy module; what a command runs is imported when
it runs (issue 24). Speed itself is measured by benchmarks/cli_startup.py, not here.

The check runs in a fresh interpreter (this one has imported everything already). It cannot
pass for the wrong reason: it first checks that every plugin was loaded and registered its
command, and that every module it looks for exists (a misspelt name would never be seen).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any, get_args

#: What registering the commands must not import: the web stack, the database, Kafka and
#: HTTP clients, the models (pydantic and the event catalogue) and the services' wiring.
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "scim2_server",
    "scim2_models",
    "asyncpg",
    "aiokafka",
    "httpx",
    "ldap3",
    "yaml",
    "pydantic",
    "cryptography",
    "accord.events.catalogue",
    "accord.events.registry",
    "accord.events.envelope",
    "accord.events.publisher",
    "accord.runtime.cli_support",
    "accord.runtime.service",
    "accord.orchestrator.bootstrap",
    "accord.provisioner.bootstrap",
    "accord.authz.bootstrap",
    "accord.auditor.bootstrap",
    "accord.sources.bootstrap",
    "accord.sources.runner",
    "accord.stack.platform",
    "accord.stack.deploy_files",
)
#: The commands accord-events brings itself.
OWN_COMMANDS = ("publish", "events", "schemas")

_PROBE = """
import importlib.util, json, sys
from importlib.metadata import entry_points

from accord.events.cli import build_parser

parser = build_parser()
loaded = set(sys.modules)
commands = sorted(parser._subparsers._group_actions[0].choices)
plugins = sorted((p.name, p.module) for p in entry_points(group="accord.cli"))
heavy = json.loads(sys.argv[1])
print(json.dumps({
    "commands": commands,
    "plugin_modules_loaded": [m for _, m in plugins if m in loaded],
    "heavy_loaded": [m for m in heavy if m in loaded],
    # Looked for only now, as finding a module may import its package.
    "heavy_missing": [m for m in heavy if importlib.util.find_spec(m) is None],
}))
"""


def _probe() -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found, done.stderr


def _plugins() -> list[tuple[str, str]]:
    return sorted((p.name, p.module) for p in entry_points(group="accord.cli"))


def test_the_parser_with_every_plugin_imports_nothing_heavy() -> None:
    found, stderr = _probe()
    plugins = _plugins()
    assert len(plugins) >= 11  # token, dlq, up, deploy, audit, policy, approvals, ...
    assert stderr == ""  # no "command unavailable" warning: every plugin loaded
    assert found["plugin_modules_loaded"] == [module for _, module in plugins]
    assert set(found["commands"]) >= {name for name, _ in plugins} | set(OWN_COMMANDS)
    assert found["heavy_missing"] == []
    assert found["heavy_loaded"] == []


def test_accord_help_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "accord.events.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    listed = done.stdout.split("commands:", 1)[1]
    for name in [*OWN_COMMANDS, *(name for name, _ in _plugins())]:
        assert f"\n    {name} " in listed or f"\n    {name}\n" in listed, name


# --- what the parsers spell out, to import nothing, equals what it copies -----------------


def test_publish_lists_the_registry_s_event_types() -> None:
    from accord.events.registry import REGISTRY
    from accord.events.topics import EVENT_TYPES

    assert list(EVENT_TYPES) == [spec.type for spec in REGISTRY]


def test_audit_report_names_are_the_report_queries() -> None:
    from accord.auditor.adapters import report_queries
    from accord.auditor.audit_cli import REPORTS

    assert ("access", *report_queries.SPAN_REPORTS) == REPORTS


def test_sagas_choices_are_the_saga_s_statuses_and_types() -> None:
    from accord.orchestrator import cli
    from accord.orchestrator.domain import account_saga as saga

    assert list(get_args(saga.Status)) == cli.STATUSES
    assert list(get_args(saga.SagaType)) == cli.TYPES


def test_reconcile_page_size_is_the_reconciler_s() -> None:
    from accord.provisioner import reconcile, reconcile_cli

    assert reconcile_cli.PAGE_SIZE == reconcile.PAGE_SIZE
