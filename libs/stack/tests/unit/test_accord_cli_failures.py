"""Every `accord` subcommand, given a broken environment or bad input, says what is wrong in one
line on stderr and exits non-zero: never a traceback, never a secret of the environment.

Run in-process with every installed plugin (the workspace's), against nothing: the database
and the broker are addresses where nothing listens, so nothing here needs a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from accord.events.cli import main

PASSWORD = "s3cret-password"  # planted, to prove it is never shown
NOWHERE_DB = f"postgresql://accord:{PASSWORD}@127.0.0.1:1/accord"
NOWHERE_KAFKA = "127.0.0.1:1"
TOKEN_ENV = "ACCORD_TEST_DEMO_TOKEN"
GROUP = '{"group_id": "g-1"}'

#: Every subcommand that works on Accord's database.
DATABASE_COMMANDS: list[list[str]] = [
    ["token", "create", "--subject", "x", "--role", "admin"],
    ["token", "list"],
    ["token", "revoke", "0123456789abcdef"],
    ["sagas", "list"],
    ["sagas", "show", "s-1"],
    ["sagas", "retry", "s-1"],
    ["sagas", "cancel", "s-1", "--reason", "duplicate"],
    ["audit", "verify"],
    ["audit", "checkpoint", "--key", "{key}"],
    ["audit", "events"],
    ["audit", "report", "sagas"],
    ["approvals", "list"],
    ["approvals", "show", "req-1"],
    ["approvals", "approve", "req-1", "--as", "m-1001"],
    ["approvals", "deny", "req-1", "--as", "m-1001"],
    ["reconcile", "demo"],
    ["reconcile", "--history"],
]

#: DATABASE_URL values, and what the one line says about each.
BROKEN_DATABASE_URLS = {
    None: "DATABASE_URL is not set",
    "not a url": "DATABASE_URL is not a PostgreSQL URL",
    "mysql://root@127.0.0.1/accord": "DATABASE_URL is not a PostgreSQL URL",
    f"postgresql://accord:{PASSWORD}@127.0.0.1:99999/accord": "not a PostgreSQL URL",
    f"postgresql://accord:{PASSWORD}@127.0.0.1:1/accord?sslmode=sometimes": "sslmode",
    NOWHERE_DB: "database unavailable: ",
}

#: Every subcommand that talks to the broker.
BROKER_COMMANDS: list[list[str]] = [
    ["dlq", "list", "provision.requested"],
    ["dlq", "list", "provision.requested", "--json"],
    ["dlq", "replay", "provision.requested", "--all"],
    ["dlq", "replay", "provision.requested", "--event-id", "e-1", "--dry-run"],
    ["publish", "user.created", "--data", '{"user_id": "e-1", "user_name": "ada"}'],
]

#: Bad input, each with what the one line says.
BAD_INPUT: list[tuple[list[str], str]] = [
    (["publish", "user.created", "--data", "{not json"], "not valid JSON"),
    (["publish", "user.created", "--data", "@{tmp}/missing.json"], "cannot read"),
    (["publish", "no.such.type", "--data", "{}"], "no.such.type"),
    (["publish", "user.created", "--data", '{"user_id": "e-1"}'], "user_name"),
    (["audit", "verify", "--public-key", "{tmp}/missing.pub"], "missing.pub"),
    (["audit", "verify", "--checkpoint", "{tmp}/missing.json"], "cannot read"),
    (["audit", "verify", "--checkpoint-dir", "{key}"], "is not a folder"),
    (["audit", "checkpoint", "--key", "{tmp}/missing.pem"], "missing.pem"),
    (["audit", "keygen", "--out", "{key}"], "not overwritten"),
    (["audit", "keygen", "--out", "{tmp}/no/such/folder/key.pem"], "cannot write"),
    (["audit", "events", "--limit", "0"], "--limit"),
    (
        [
            "audit",
            "report",
            "drift",
            "--since",
            "2026-02-01T00:00:00Z",
            "--until",
            "2026-01-01T00:00:00Z",
        ],
        "--since must be before --until",
    ),
    (["policy", "validate", "{tmp}/no-policies"], "no-policies"),
    (["policy", "test", "{tmp}/missing.yaml"], "missing.yaml"),
    (["reconcile"], "name the target"),
    (["reconcile", "nosuch"], "no target named 'nosuch'"),
    (["reconcile", "unset"], f"environment variable {TOKEN_ENV}_UNSET is not set"),
    (["dlq", "list", "provision.requested", "--limit", "0"], "--limit"),
    (["schemas", "{tmp}", "--check"], "drifted"),
    (["schemas", "{key}/schemas"], "cannot write the schemas"),
    (["deploy", "--root", "{tmp}"], "is not Accord's repository"),
    (["deploy", "--root", "{tmp}", "--check"], "is not Accord's repository"),
    (
        ["up", "--home", "{tmp}/home", "--workflows", "{tmp}/no-flows"],
        "no-flows (--workflows) does not exist",
    ),
    (["up", "--home", "{tmp}/home", "--workflows", "{key}"], "key.pem (--workflows) is not a"),
    (
        ["up", "--home", "{tmp}/home", "--sources", "{tmp}/no-sources.yaml"],
        "no-sources.yaml (--sources) does not exist",
    ),
    (["up", "--home", "{tmp}/home", "--sources", "{tmp}"], "(--sources) is not a file"),
]


@pytest.fixture(autouse=True)
def nothing_listens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A clean environment: a database and a broker that are not there, a targets file with
    a target whose secret is set and one whose secret is not."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", NOWHERE_DB)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", NOWHERE_KAFKA)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv(TOKEN_ENV, "token")
    monkeypatch.setenv(f"{TOKEN_ENV}_UNSET", "")
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n"
        "  - {name: demo, kind: scim, url: 'http://127.0.0.1:1/v2', token_env: "
        f"{TOKEN_ENV}}}\n"
        "  - {name: unset, kind: scim, url: 'http://127.0.0.1:1/v2', token_env: "
        f"{TOKEN_ENV}_UNSET}}\n"
    )
    monkeypatch.setenv("ACCORD_TARGETS_FILE", str(targets))
    assert main(["audit", "keygen", "--out", str(tmp_path / "key.pem")]) == 0


def run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: Sequence[str]
) -> tuple[int, str, str]:
    """`accord ARGV` in-process ({tmp} and {key} filled in): exit code, stdout, stderr."""
    capsys.readouterr()
    code = main([fill(a, tmp_path) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fill(argument: str, tmp_path: Path) -> str:
    """{tmp}: the test's folder; {key}: a valid signing key in it."""
    return argument.replace("{tmp}", str(tmp_path)).replace("{key}", str(tmp_path / "key.pem"))


def assert_one_line(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("accord: error: "), err
    assert "unexpected" not in err, "a failure the command should have named"
    assert PASSWORD not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("url", list(BROKEN_DATABASE_URLS), ids=str)
@pytest.mark.parametrize("argv", DATABASE_COMMANDS, ids=" ".join)
def test_a_broken_database_url_is_one_line(
    argv: list[str],
    url: str | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if url is None:
        monkeypatch.delenv("DATABASE_URL")
    else:
        monkeypatch.setenv("DATABASE_URL", url)

    code, _, err = run(capsys, tmp_path, argv)

    assert_one_line(code, err, BROKEN_DATABASE_URLS[url])
    assert code == (1 if url == NOWHERE_DB else 2)


@pytest.mark.parametrize("argv", BROKER_COMMANDS, ids=" ".join)
def test_an_unreachable_broker_is_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, tmp_path, argv)

    assert_one_line(code, err)
    assert "broker unavailable" in err or "could not publish to Kafka" in err


@pytest.mark.parametrize(("argv", "says"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, tmp_path, argv)

    assert_one_line(code, err, says)


@pytest.mark.parametrize(
    ("variable", "value", "argv", "says"),
    [
        ("ACCORD_SAGA_RETRY_BASE_S", "soon", ["sagas", "retry", "s-1"], "ACCORD_SAGA_RETRY_BASE_S"),
        ("ACCORD_SHUTDOWN_TIMEOUT_S", "later", ["reconcile", "demo"], "ACCORD_SHUTDOWN_TIMEOUT_S"),
        (
            "ACCORD_APPROVAL_TIMEOUT_S",
            "never",
            ["approvals", "approve", "req-1", "--as", "m-1"],
            "ACCORD_APPROVAL_TIMEOUT_S",
        ),
        ("ACCORD_TARGETS_FILE", "{tmp}/missing.yaml", ["reconcile", "demo"], "missing.yaml"),
        ("ACCORD_TARGETS_FILE", "{key}", ["reconcile", "demo"], "key.pem"),
        ("ACCORD_POLICY_DIR", "{tmp}/none", ["approvals", "deny", "r-1", "--as", "m"], "none"),
        ("ACCORD_POLICY_DIR", "{tmp}/none", ["policy", "validate"], "none"),
        ("KAFKA_SECURITY_PROTOCOL", "PIGEON", ["dlq", "list", "x"], "KAFKA_SECURITY_PROTOCOL"),
        ("KAFKA_SECURITY_PROTOCOL", "PIGEON", ["dlq", "replay", "x", "--all"], "PROTOCOL"),
        (
            "KAFKA_SECURITY_PROTOCOL",
            "PIGEON",
            ["publish", "group.deleted", "--data", GROUP],
            "PROTOCOL",
        ),
        ("KAFKA_SASL_MECHANISM", "GUESS", ["dlq", "list", "x"], "KAFKA_SASL_MECHANISM"),
        ("KAFKA_SSL_CAFILE", "{tmp}/no-ca.pem", ["dlq", "list", "x"], "KAFKA_SSL_"),
        ("KAFKA_SSL_CAFILE", "{key}", ["publish", "group.deleted", "--data", GROUP], "KAFKA_SSL_"),
        ("DATABASE_URL", "not a url", ["up", "--home", "{tmp}/home"], "DATABASE_URL"),
        ("ACCORD_BROKER", "redpanda", ["up", "--home", "{tmp}/home"], "ACCORD_BROKER"),
        ("ACCORD_WORKFLOWS_DIR", "{tmp}/none", ["up", "--home", "{tmp}/home"], "WORKFLOWS_DIR"),
        ("ACCORD_BROKER", "redpanda", ["publish", "group.deleted", "--data", GROUP], "BROKER"),
        ("ACCORD_BROKER", "redpanda", ["dlq", "replay", "x", "--all"], "ACCORD_BROKER"),
    ],
)
def test_a_broken_setting_is_one_line(
    variable: str,
    value: str,
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(variable, fill(value, tmp_path))
    if variable.startswith("KAFKA_SASL"):
        monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    if variable.startswith("KAFKA_SSL"):
        monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")

    code, _, err = run(capsys, tmp_path, argv)

    assert_one_line(code, err, says)
