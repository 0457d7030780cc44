"""`accord up`'s workflows folder, sources file and mail catcher: what the options and the
environment make of the platform's config, and the environment the orchestrator and the
sources service then get (nothing is started here; the catcher's wiring runs for real in
tests/integration)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from accord.events.cli import build_parser
from accord.orchestrator.adapters.smtp import SmtpSettings
from accord.orchestrator.settings import OrchestratorSettings
from accord.sources.settings import SourcesSettings
from accord.stack.cli import BadOption, platform_config, sources_file, workflows_folder
from accord.stack.platform import CAUGHT_MAIL_SENDER, Platform


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No workflows, SMTP, database or broker settings leak in from the test's own run."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "ACCORD_BROKER"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("ACCORD_SMTP_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("ACCORD_WORKFLOWS_DIR", raising=False)
    monkeypatch.delenv("ACCORD_SOURCES_FILE", raising=False)


def platform_for(tmp_path: Path, *argv: str, **environ: str) -> Platform:
    """The (unstarted) platform `accord up ARGV` would run in that environment."""
    args = build_parser().parse_args(["up", "--home", str(tmp_path / "home"), *argv])
    return Platform(platform_config(args, environ))


def test_the_workflows_option_reaches_the_orchestrator_as_an_absolute_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "flows").mkdir()
    platform = platform_for(tmp_path, "--workflows", "flows")  # relative to the cwd

    assert platform.config.workflows_dir == tmp_path / "flows"
    env = platform.service_env()
    assert env["ACCORD_WORKFLOWS_DIR"] == str(tmp_path / "flows")
    assert OrchestratorSettings.model_validate(env).workflows_dir == tmp_path / "flows"


def test_accord_workflows_dir_in_the_environment_is_honoured_and_the_option_wins(
    tmp_path: Path,
) -> None:
    (tmp_path / "from-env").mkdir()
    (tmp_path / "from-option").mkdir()
    env = {"ACCORD_WORKFLOWS_DIR": "from-env"}

    assert platform_for(tmp_path, **env).config.workflows_dir == tmp_path / "from-env"
    chosen = platform_for(tmp_path, "--workflows", "from-option", **env).config
    assert chosen.workflows_dir == tmp_path / "from-option"


def test_without_a_workflows_folder_the_orchestrator_gets_none(tmp_path: Path) -> None:
    platform = platform_for(tmp_path)

    assert platform.config.workflows_dir is None
    assert "ACCORD_WORKFLOWS_DIR" not in platform.service_env()
    assert workflows_folder(None, {"ACCORD_WORKFLOWS_DIR": ""}) is None


@pytest.mark.parametrize(
    ("option", "environ", "says"),
    [
        (Path("missing"), {}, "(--workflows) does not exist"),
        (None, {"ACCORD_WORKFLOWS_DIR": "missing"}, "(ACCORD_WORKFLOWS_DIR) does not exist"),
        (Path("file.yaml"), {}, "is not a folder"),
    ],
)
def test_a_workflows_folder_that_is_not_there_is_refused(
    option: Path | None, environ: dict[str, str], says: str, tmp_path: Path
) -> None:
    (tmp_path / "file.yaml").write_text("id: x\n")
    with pytest.raises(BadOption, match="the workflows folder") as refused:
        workflows_folder(option, environ)
    assert says in str(refused.value)
    assert str(tmp_path) in str(refused.value), "the absolute path, to see where it looked"


def test_the_sources_option_reaches_the_sources_service_and_the_cli_as_an_absolute_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    platform = platform_for(tmp_path, "--sources", "sources.yaml")  # relative to the cwd

    assert platform.config.sources_file == tmp_path / "sources.yaml"
    env = platform.service_env()
    assert env["ACCORD_SOURCES_FILE"] == str(tmp_path / "sources.yaml")
    assert SourcesSettings.model_validate(env).sources_file == tmp_path / "sources.yaml"
    # `accord sources run NAME` beside accord up reads the same file (home/env).
    assert platform.cli_env()["ACCORD_SOURCES_FILE"] == str(tmp_path / "sources.yaml")


def test_accord_sources_file_in_the_environment_is_honoured_and_the_option_wins(
    tmp_path: Path,
) -> None:
    (tmp_path / "from-env.yaml").write_text("sources: []\n")
    (tmp_path / "from-option.yaml").write_text("sources: []\n")
    env = {"ACCORD_SOURCES_FILE": "from-env.yaml"}

    assert platform_for(tmp_path, **env).config.sources_file == tmp_path / "from-env.yaml"
    chosen = platform_for(tmp_path, "--sources", "from-option.yaml", **env).config
    assert chosen.sources_file == tmp_path / "from-option.yaml"


def test_without_a_sources_file_the_sources_service_runs_no_source(tmp_path: Path) -> None:
    platform = platform_for(tmp_path)

    assert platform.config.sources_file is None
    assert "ACCORD_SOURCES_FILE" not in platform.service_env()
    assert "ACCORD_SOURCES_FILE" not in platform.cli_env()
    assert SourcesSettings.model_validate(platform.service_env()).sources_file is None
    assert sources_file(None, {"ACCORD_SOURCES_FILE": ""}) is None


@pytest.mark.parametrize(
    ("option", "environ", "says"),
    [
        (Path("missing.yaml"), {}, "(--sources) does not exist"),
        (None, {"ACCORD_SOURCES_FILE": "missing.yaml"}, "(ACCORD_SOURCES_FILE) does not exist"),
        (Path("folder"), {}, "is not a file"),
    ],
)
def test_a_sources_file_that_is_not_there_is_refused(
    option: Path | None, environ: dict[str, str], says: str, tmp_path: Path
) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(BadOption, match="the sources file") as refused:
        sources_file(option, environ)
    assert says in str(refused.value)
    assert str(tmp_path) in str(refused.value), "the absolute path, to see where it looked"


def test_the_mail_catcher_is_on_by_default_and_gets_the_orchestrator_s_mail(
    tmp_path: Path,
) -> None:
    platform = platform_for(tmp_path, "--smtp-port", "2525")

    assert platform.config.mail_catcher is True
    assert platform.mail is not None
    assert platform.mail.port == 2525
    assert platform.mail.directory == tmp_path / "home" / "mail"
    smtp = SmtpSettings.model_validate(platform.service_env())
    assert (smtp.host, smtp.effective_port, smtp.security) == ("127.0.0.1", 2525, "none")
    assert smtp.sender == CAUGHT_MAIL_SENDER
    assert smtp.username is None


def test_the_catcher_keeps_a_from_but_drops_other_smtp_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The services inherit accord up's environment: a password left there would make the
    # orchestrator ask the catcher for an AUTH it does not offer.
    monkeypatch.setenv("ACCORD_SMTP_FROM", "hr-robot@example.com")
    monkeypatch.setenv("ACCORD_SMTP_USERNAME", "someone")
    monkeypatch.setenv("ACCORD_SMTP_PASSWORD", "left-over")
    platform = platform_for(tmp_path, "--smtp-port", "2525")  # a free port's once started

    env = platform.service_env()
    assert "ACCORD_SMTP_USERNAME" not in env
    assert "ACCORD_SMTP_PASSWORD" not in env
    smtp = SmtpSettings.model_validate(env)
    assert smtp.sender == "hr-robot@example.com"
    assert smtp.security == "none"


def test_a_real_smtp_server_in_the_environment_replaces_the_catcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = {
        "ACCORD_SMTP_HOST": "smtp.example.com",
        "ACCORD_SMTP_USERNAME": "accord",
        "ACCORD_SMTP_PASSWORD": "relay-password",
    }
    for name, value in real.items():
        monkeypatch.setenv(name, value)
    platform = platform_for(tmp_path, **real)

    assert platform.config.mail_catcher is False
    assert platform.mail is None
    smtp = SmtpSettings.model_validate(platform.service_env())
    assert (smtp.host, smtp.effective_port, smtp.security) == ("smtp.example.com", 587, "starttls")
    assert smtp.username == "accord"
