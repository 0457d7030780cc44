"""The targets file: parsing, validation and secrets read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.provisioner.targets import (
    LdapTarget,
    ScimTarget,
    TargetsFile,
    TargetsFileError,
    load_targets,
)

VALID = """\
targets:
  - name: scim-demo
    kind: scim
    url: http://127.0.0.1:8080/v2
    token_env: ACCORD_TEST_SCIM_TOKEN
  - name: hr-app-2
    kind: scim
    url: https://hr.example.org/scim/v2
    timeout_s: 2.5
    max_attempts: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_loads(tmp_path: Path) -> None:
    parsed = load_targets(write(tmp_path, VALID))

    assert isinstance(parsed, TargetsFile)
    assert [t.name for t in parsed.targets] == ["scim-demo", "hr-app-2"]
    demo, hr = parsed.targets
    assert demo.kind == "scim"
    assert demo.url == "http://127.0.0.1:8080/v2"
    assert demo.token_env == "ACCORD_TEST_SCIM_TOKEN"
    assert demo.timeout_s == 10.0
    assert demo.max_attempts == 5
    assert hr.url == "https://hr.example.org/scim/v2"
    assert hr.token_env is None
    assert hr.timeout_s == 2.5
    assert hr.max_attempts == 3


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "targets: []\n"])
def test_an_empty_file_has_no_targets(tmp_path: Path, text: str) -> None:
    assert load_targets(write(tmp_path, text)).targets == []


def test_an_unknown_key_in_a_target_is_refused(tmp_path: Path) -> None:
    text = "targets:\n  - {name: a, kind: scim, url: 'http://x', password: hunter2}\n"

    with pytest.raises(TargetsFileError, match="password") as caught:
        load_targets(write(tmp_path, text))

    assert "hunter2" not in str(caught.value)


def test_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetsFileError, match="connectors"):
        load_targets(write(tmp_path, "targets: []\nconnectors: []\n"))


@pytest.mark.parametrize(
    "url", ["ftp://example.org/scim", "example.org/scim", "127.0.0.1:8080", "javascript:alert(1)"]
)
def test_a_bad_url_is_refused(tmp_path: Path, url: str) -> None:
    text = f"targets:\n  - {{name: a, kind: scim, url: '{url}'}}\n"

    with pytest.raises(TargetsFileError, match="url") as caught:
        load_targets(write(tmp_path, text))

    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize("url", ["http://", "https://", "http://exa mple.org/scim"])
def test_a_url_without_a_valid_host_is_refused(tmp_path: Path, url: str) -> None:
    text = f"targets:\n  - {{name: a, kind: scim, url: '{url}'}}\n"

    with pytest.raises(TargetsFileError, match="url"):
        load_targets(write(tmp_path, text))


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("{name: Bad_Name, kind: scim, url: 'http://x'}", "name"),
        ("{name: a, kind: smtp, url: 'http://x'}", "kind"),
        ("{name: a, kind: scim, url: 'http://x', timeout_s: 0}", "timeout_s"),
        ("{name: a, kind: scim, url: 'http://x', max_attempts: 0}", "max_attempts"),
        ("{name: a, kind: scim, url: 'http://x', max_attempts: 21}", "max_attempts"),
        ("{name: a, kind: scim}", "url"),
    ],
)
def test_invalid_fields_are_refused(tmp_path: Path, entry: str, field: str) -> None:
    with pytest.raises(TargetsFileError, match=field):
        load_targets(write(tmp_path, f"targets:\n  - {entry}\n"))


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    text = (
        "targets:\n"
        "  - {name: same, kind: scim, url: 'http://a'}\n"
        "  - {name: same, kind: scim, url: 'http://b'}\n"
    )

    with pytest.raises(TargetsFileError, match="unique"):
        load_targets(write(tmp_path, text))


def test_a_missing_file_is_a_targets_file_error(tmp_path: Path) -> None:
    with pytest.raises(TargetsFileError, match=r"absent\.yaml"):
        load_targets(tmp_path / "absent.yaml")


def test_invalid_yaml_is_a_targets_file_error(tmp_path: Path) -> None:
    with pytest.raises(TargetsFileError, match="not valid YAML"):
        load_targets(write(tmp_path, "targets: [\n"))


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetsFileError):
        load_targets(write(tmp_path, "- name: a\n"))


def test_targets_file_error_is_a_value_error() -> None:
    assert issubclass(TargetsFileError, ValueError)


# --- tokens ----------------------------------------------------------------------------------


def target(token_env: str | None) -> ScimTarget:
    return ScimTarget(name="scim-demo", kind="scim", url="http://x", token_env=token_env)


def test_token_is_read_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    variable = f"ACCORD_TEST_TOKEN_{unique.upper()}"
    monkeypatch.setenv(variable, "s3cret-value")

    token = target(variable).token()

    assert token is not None
    assert token.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(token)
    assert "s3cret-value" not in str(token)


def test_token_is_read_when_asked_not_when_the_file_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCORD_TEST_SCIM_TOKEN", raising=False)
    parsed = load_targets(write(tmp_path, VALID))  # no error yet

    monkeypatch.setenv("ACCORD_TEST_SCIM_TOKEN", "later")
    token = parsed.targets[0].token()

    assert token is not None
    assert token.get_secret_value() == "later"


def test_no_token_env_means_no_token() -> None:
    assert target(None).token() is None


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_a_missing_token_variable_names_the_variable_never_a_value(
    monkeypatch: pytest.MonkeyPatch, unique: str, value: str | None
) -> None:
    variable = f"ACCORD_TEST_TOKEN_{unique.upper()}"
    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)

    with pytest.raises(TargetsFileError) as caught:
        target(variable).token()

    message = str(caught.value)
    assert variable in message
    assert "scim-demo" in message
    assert "not set" in message


def test_an_ldap_target_reads_its_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n"
        "  - name: corp-ldap\n"
        "    kind: ldap\n"
        "    url: ldaps://ldap.example.org\n"
        "    bind_dn: cn=accord,dc=example,dc=org\n"
        "    password_env: CORP_LDAP_PASSWORD\n"
        "    people_dn: ou=people,dc=example,dc=org\n"
    )
    (target,) = load_targets(path).targets
    assert isinstance(target, LdapTarget)
    assert (target.link_attribute, target.disable_attribute) == ("description", "employeeType")
    with pytest.raises(TargetsFileError, match="CORP_LDAP_PASSWORD is not set"):
        target.password()
    monkeypatch.setenv("CORP_LDAP_PASSWORD", "s3cret")
    assert target.password().get_secret_value() == "s3cret"
    assert "s3cret" not in repr(target.password())


def test_sql_and_webhook_targets_load_and_bad_table_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n"
        "  - {name: hr-app, kind: sql, dsn_env: HR_DSN, table: app.users,"
        " columns: {email: mail}}\n"
        "  - {name: hook, kind: webhook, url: 'https://hooks.example.org/accord',"
        " secret_env: HOOK_SECRET}\n"
    )
    sql, hook = load_targets(path).targets
    assert (sql.kind, sql.url, hook.kind) == ("sql", "sql:app.users", "webhook")

    path.write_text(
        "targets:\n  - {name: bad, kind: sql, dsn_env: X, table: 'users; DROP TABLE x'}\n"
    )
    with pytest.raises(TargetsFileError, match="table"):
        load_targets(path)
