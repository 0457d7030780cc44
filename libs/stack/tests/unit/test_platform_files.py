"""The platform's generated targets and birthright files, read by the services' own loaders."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from accord.events import Profile
from accord.events.cli import read_env_file
from accord.orchestrator.domain.birthright import Birthright
from accord.provisioner.targets import load_targets
from accord.runtime.config_file import load_yaml_model
from accord.stack import demo
from accord.stack.platform import (
    DEMO_TOKEN_ENV,
    SERVICES,
    DepartmentTarget,
    Platform,
    PlatformConfig,
)

CHAOS = DepartmentTarget(
    name="scim-chaos",
    url="http://127.0.0.1:9999/v2",
    token="chaos-token",
    department="Chaos",
    max_attempts=3,
    breaker_threshold=100,
)


def generated(tmp_path: Path, *dedicated: DepartmentTarget) -> Platform:
    """A platform (not started) whose files are written under tmp_path."""
    platform = Platform(PlatformConfig.ephemeral(tmp_path, department_targets=list(dedicated)))
    platform._write_targets()
    platform._write_birthright()
    return platform


def targets_of(platform: Platform, department: str | None) -> list[str]:
    """The targets the generated rules give a joiner of that department."""
    rules = load_yaml_model(platform.birthright_file, Birthright, ValueError)
    assert rules.unknown_attributes() == []
    return rules.targets_for(Profile(user_name="ada", department=department))


def test_accord_up_gives_everyone_but_contractors_the_demo_target(tmp_path: Path) -> None:
    platform = generated(tmp_path)
    assert targets_of(platform, "Research") == ["scim-demo"]
    assert targets_of(platform, None) == ["scim-demo"]
    assert targets_of(platform, "Contractors") == []
    assert "scim-chaos" not in platform.endpoints()


def test_a_department_target_is_that_department_s_only_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = generated(tmp_path, CHAOS)
    assert targets_of(platform, "Chaos") == ["scim-chaos"]
    assert targets_of(platform, "Research") == ["scim-demo"]
    assert targets_of(platform, "Contractors") == []

    env = platform.service_env()
    assert env["ACCORD_SCIM_CHAOS_TOKEN"] == "chaos-token"
    for name in (DEMO_TOKEN_ENV, CHAOS.token_env):
        monkeypatch.setenv(name, env[name])
    demo, chaos = load_targets(platform.targets_file).targets
    assert (demo.name, demo.max_attempts, demo.breaker_threshold) == ("scim-demo", 5, 5)
    assert (chaos.name, chaos.url) == ("scim-chaos", CHAOS.url)
    assert (chaos.max_attempts, chaos.breaker_threshold) == (3, 100)
    assert platform.endpoints()["scim-chaos"] == CHAOS.url


def test_the_env_file_gives_the_cli_what_the_services_get(tmp_path: Path) -> None:
    """`accord` beside `accord up` reads home/env: the services' database, broker, targets
    file and the targets' secrets, so that `accord reconcile scim-demo` works as written."""
    platform = generated(tmp_path, CHAOS)
    platform.database_url = "postgresql://accord:pw@127.0.0.1:5433/accord"
    platform.bootstrap_servers = "127.0.0.1:9092"
    platform._write_env_file()

    written = read_env_file(platform.env_file)
    services = platform.service_env()
    assert written == {name: services[name] for name in written}
    assert written["DATABASE_URL"] == platform.database_url
    assert written["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert written["ACCORD_TARGETS_FILE"] == str(platform.targets_file)
    assert written[DEMO_TOKEN_ENV] == platform.scim.bearer_token
    assert written[CHAOS.token_env] == CHAOS.token
    assert stat.S_IMODE(platform.env_file.stat().st_mode) == 0o600


def test_the_platform_runs_every_service_unless_told_which(tmp_path: Path) -> None:
    everything = Platform(PlatformConfig.ephemeral(tmp_path))
    assert everything.config.services == SERVICES
    assert "sources" in SERVICES
    assert set(SERVICES) <= everything.endpoints().keys()

    five = ("orchestrator", "provisioner", "authz", "auditor", "authn")  # the benchmarks'
    some = Platform(PlatformConfig.ephemeral(tmp_path, services=five))
    assert "sources" not in some.endpoints()
    # Every service's port is still given out, and authn's address does not need it started.
    env = some.service_env()
    assert env["ACCORD_AUTHN_PUBLIC_URL"] == some.endpoints()["authn"]
    with pytest.raises(ValueError, match="no such service: sourcez"):
        Platform(PlatformConfig.ephemeral(tmp_path, services=("authn", "sourcez")))


def test_the_demo_organisation_has_a_manager_and_her_report() -> None:
    assert demo.REPORT.manager_id == demo.MANAGER.user_id
    assert demo.MANAGER.manager_id is None
    ids = [demo.event_id(person) for person in demo.ORGANISATION]
    assert len(set(ids)) == 2
    assert ids == [demo.event_id(person) for person in demo.ORGANISATION], "fixed, not random"
