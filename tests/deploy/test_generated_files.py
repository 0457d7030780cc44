"""The generated deployment files match the registry, and the ACL table matches the services.

`accord deploy --check` fails when topics.yaml, users.yaml, topics.txt, the policies copy
or the ACL table of docs/deployment.md drift from what accord.events.REGISTRY and
accord.stack.kafka_acls give. The ACL table itself is held against the services: what each
one consumes (its routes) and what each one publishes (the event models it builds).
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from accord.events import REGISTRY
from accord.stack import deploy_files, kafka_acls

from .conftest import ROOT


def test_generated_deployment_files_match_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    code = deploy_files.main(["--check", "--root", str(ROOT)])
    assert code == 0, capsys.readouterr().err


def test_the_deployment_doc_shows_the_generated_acl_table() -> None:
    doc = (ROOT / deploy_files.ACL_TABLE_DOC).read_text()
    assert f"{deploy_files.ACL_BEGIN}\n{kafka_acls.markdown_table()}{deploy_files.ACL_END}" in doc
    for access in kafka_acls.principals():
        assert f"| `{access.principal}` |" in doc


def definitions(tmp_path: Path, *, workflows: bool = True) -> dict[str, Any]:
    """Each service's ServiceDefinition, built from default settings (nothing started); the
    orchestrator with its workflow engine on (an empty folder), where it reads the most:
    its own saga ends come back to it only then (a workflow task saga's end answers its
    task)."""
    from accord.auditor.bootstrap import definition as auditor
    from accord.auditor.settings import AuditorSettings
    from accord.authn.bootstrap import definition as authn
    from accord.authn.settings import AuthnSettings
    from accord.authz.bootstrap import definition as authz
    from accord.authz.settings import AuthzSettings
    from accord.orchestrator.bootstrap import definition as orchestrator
    from accord.orchestrator.settings import OrchestratorSettings
    from accord.provisioner.bootstrap import definition as provisioner
    from accord.provisioner.settings import ProvisionerSettings
    from accord.sources.bootstrap import definition as sources
    from accord.sources.settings import SourcesSettings

    targets = tmp_path / "targets.yaml"
    targets.write_text("targets: []\n")
    folder = tmp_path / "workflows"
    folder.mkdir(exist_ok=True)
    orchestrator_settings = OrchestratorSettings(workflows_dir=folder if workflows else None)
    return {
        "orchestrator": orchestrator(orchestrator_settings),
        "provisioner": provisioner(ProvisionerSettings(targets_file=targets)),
        "authz": authz(AuthzSettings()),
        "auditor": auditor(AuditorSettings()),
        "authn": authn(AuthnSettings()),
        "sources": sources(SourcesSettings()),
    }


def test_each_service_reads_what_its_kafka_user_may_read(tmp_path: Path) -> None:
    runtime = SimpleNamespace(pool=None)  # routes only keep it for later
    found = definitions(tmp_path)
    assert found.keys() == {access.name for access in kafka_acls.SERVICES}, "every service"
    for name, definition in found.items():
        (access,) = [a for a in kafka_acls.SERVICES if a.name == name]
        types = [*definition.routes(runtime), *definition.batch_types]
        consumed = {REGISTRY.spec(t).topic for t in types}
        assert consumed == set(access.reads), name
        takes_dlqs = definition.batch_handler is not None or (
            definition.dead_letter_handler is not None
        )
        assert takes_dlqs == access.reads_dead_letters, name
        assert access.group == f"accord-{definition.name}", "the runtime's group name"


def test_without_its_workflow_engine_the_orchestrator_reads_no_saga_ends(tmp_path: Path) -> None:
    runtime = SimpleNamespace(pool=None)
    (access,) = [a for a in kafka_acls.SERVICES if a.name == "orchestrator"]
    plain = definitions(tmp_path, workflows=False)["orchestrator"]
    consumed = {REGISTRY.spec(t).topic for t in plain.routes(runtime)}
    assert consumed == set(access.reads) - {"saga.completed", "saga.failed"}


def published_models(package: Path) -> set[str]:
    """Names of the event models a package constructs anywhere in its source, but for its
    test support (`testing.py`, `testing/`), which simulates the other services."""
    models = {spec.model.__name__ for spec in REGISTRY}
    found = set()
    for path in package.rglob("*.py"):
        if "testing" in (path.stem, path.parent.name):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in models:
                    found.add(name)
    return found


@pytest.mark.parametrize("access", kafka_acls.SERVICES, ids=lambda a: a.name)
def test_each_service_publishes_only_what_its_kafka_user_may_write(
    access: kafka_acls.ServiceAccess,
) -> None:
    topic_of = {spec.model.__name__: spec.topic for spec in REGISTRY}
    package = ROOT / "services" / access.name / "src" / "accord" / access.name
    built = {topic_of[model] for model in published_models(package)}
    assert built, "the scan finds the models a service builds"
    assert built <= set(access.writes), f"{access.name} publishes {built - set(access.writes)}"
