"""The platform's generated targets and birthright files, read by the services' own loaders."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.events import Profile
from accord.orchestrator.domain.birthright import Birthright
from accord.provisioner.targets import load_targets
from accord.runtime.config_file import load_yaml_model
from accord.stack.platform import DEMO_TOKEN_ENV, DepartmentTarget, Platform, PlatformConfig

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
