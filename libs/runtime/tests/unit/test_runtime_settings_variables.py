"""Every environment variable the services' settings read, as data: each is still read,
into the same field, with the same defaults and bounds, whatever the settings classes
declare to name them (explicit aliases or a prefix).

The lists were taken from the settings classes as they were before their variable names
were derived from the field names (ACCORD_<FIELD>); add a variable here when you add one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from accord.auditor.settings import AuditorSettings
from accord.authn.settings import AuthnSettings
from accord.authz.domain.policy_files import default_policy_dir
from accord.authz.settings import AuthzSettings
from accord.orchestrator.settings import OrchestratorSettings
from accord.provisioner.settings import ProvisionerSettings
from accord.runtime.settings import ServiceSettings

#: variable -> (field, a valid value that is not the default, the field's value then)
Variables = dict[str, tuple[str, str, Any]]

#: What ServiceSettings reads, and so every service.
SHARED: Variables = {
    "DATABASE_URL": ("database_url", "postgresql://u@db:5432/x", "postgresql://u@db:5432/x"),
    "ACCORD_HTTP_HOST": ("http_host", "0.0.0.0", "0.0.0.0"),
    "ACCORD_LOG_LEVEL": ("log_level", "DEBUG", "DEBUG"),
    "ACCORD_LOG_FORMAT": ("log_format", "text", "text"),
    "ACCORD_CREATE_TOPICS": ("create_topics", "false", False),
    "ACCORD_TOPIC_REPLICATION": ("topic_replication", "3", 3),
    "ACCORD_TOPIC_PARTITIONS": ("topic_partitions", "12", 12),
    "ACCORD_BROKER": ("broker", "tansu", "tansu"),
    "ACCORD_KAFKA_FETCH_MAX_WAIT_MS": ("fetch_max_wait_ms", "7", 7),
    "ACCORD_KAFKA_IDLE_FETCH_MAX_WAIT_MS": ("idle_fetch_max_wait_ms", "70", 70),
    "ACCORD_KAFKA_IDLE_AFTER_S": ("idle_after_s", "4.5", 4.5),
    "ACCORD_KAFKA_SESSION_TIMEOUT_MS": ("session_timeout_ms", "4000", 4000),
    "ACCORD_DB_POOL_SIZE": ("db_pool_size", "4", 4),
    "ACCORD_SHUTDOWN_TIMEOUT_S": ("shutdown_timeout_s", "5", 5.0),
    "ACCORD_MAX_HANDLER_ATTEMPTS": ("max_handler_attempts", "9", 9),
    "ACCORD_OIDC_ISSUER": ("oidc_issuer", "https://idp.example", "https://idp.example"),
    "ACCORD_OIDC_AUDIENCE": ("oidc_audience", "other", "other"),
    "ACCORD_OIDC_JWKS_URL": ("oidc_jwks_url", "https://idp.example/k", "https://idp.example/k"),
    "ACCORD_OIDC_ROLES_CLAIM": ("oidc_roles_claim", "realm_access.roles", "realm_access.roles"),
    "ACCORD_MAX_BODY_BYTES": ("max_body_bytes", "2048", 2048),
    "ACCORD_RATE_LIMIT_PER_S": ("rate_limit_per_s", "7.5", 7.5),
    "ACCORD_RATE_LIMIT_BURST": ("rate_limit_burst", "8", 8),
    "ACCORD_APPLICATION_RATE_LIMIT_PER_S": ("application_rate_limit_per_s", "60", 60.0),
    "ACCORD_APPLICATION_RATE_LIMIT_BURST": ("application_rate_limit_burst", "61", 61),
    "ACCORD_AUTH_FAILURES_PER_MIN": ("auth_failures_per_min", "3", 3.0),
    "ACCORD_AUTH_FAILURES_BURST": ("auth_failures_burst", "2", 2),
}

#: What each service reads besides.
OWN: dict[type[ServiceSettings], Variables] = {
    ServiceSettings: {},
    OrchestratorSettings: {
        "ACCORD_ORCHESTRATOR_PORT": ("http_port", "9701", 9701),
        "ACCORD_BIRTHRIGHT_TARGETS": ("birthright_targets", "a,b", "a,b"),
        "ACCORD_BIRTHRIGHT_FILE": ("birthright_file", "rules.yaml", Path("rules.yaml")),
        "ACCORD_JOINER_MFA_FACTORS": ("joiner_mfa_factors", "totp, webauthn", "totp, webauthn"),
        "ACCORD_JOINER_ON_FAILURE": ("joiner_on_failure", "rollback", "rollback"),
        "ACCORD_LEAVER_RETENTION_S": ("leaver_retention_s", "0", 0.0),
        "ACCORD_SAGA_RETRY_BASE_S": ("saga_retry_base_s", "1.5", 1.5),
        "ACCORD_SAGA_RETRY_CAP_S": ("saga_retry_cap_s", "60", 60.0),
        "ACCORD_SAGA_TRANSIENT_ROUNDS": ("saga_transient_rounds", "0", 0),
        "ACCORD_SAGA_STEP_TIMEOUT_S": ("saga_step_timeout_s", "30", 30.0),
        "ACCORD_TIMER_POLL_S": ("timer_poll_s", "0.25", 0.25),
        "ACCORD_WORKFLOWS_DIR": ("workflows_dir", "/etc/accord/wf", Path("/etc/accord/wf")),
        "ACCORD_TARGETS_FILE": ("targets_file", "/etc/accord/t.yaml", Path("/etc/accord/t.yaml")),
        "ACCORD_AUTHN_URL": ("authn_url", "http://authn:8705", "http://authn:8705"),
        "ACCORD_AUTHN_TOKEN_FILE": ("authn_token_file", "/run/tok", Path("/run/tok")),
        "ACCORD_AUTHZ_URL": ("authz_url", "http://authz:8703", "http://authz:8703"),
        "ACCORD_AUTHZ_TOKEN_FILE": ("authz_token_file", "/run/tok2", Path("/run/tok2")),
        "ACCORD_WORKFLOW_CALLBACK_URL": (
            "workflow_callback_url",
            "https://accord.example.com",
            "https://accord.example.com",
        ),
    },
    ProvisionerSettings: {
        "ACCORD_PROVISIONER_PORT": ("http_port", "9702", 9702),
        "ACCORD_TARGETS_FILE": ("targets_file", "/etc/accord/t.yaml", Path("/etc/accord/t.yaml")),
    },
    AuthzSettings: {
        "ACCORD_AUTHZ_PORT": ("http_port", "9703", 9703),
        "ACCORD_POLICY_DIR": ("policy_dir", "/etc/accord/policies", Path("/etc/accord/policies")),
        "ACCORD_APPROVAL_TIMEOUT_S": ("approval_timeout_s", "0", 0.0),
        "ACCORD_APPROVAL_ON_TIMEOUT": ("approval_on_timeout", "expire", "expire"),
        "ACCORD_TIMER_POLL_S": ("timer_poll_s", "2", 2.0),
        "ACCORD_DECISION_LOG_RATE": ("decision_log_rate", "0.5", 0.5),
        "ACCORD_POLICY_RELOAD_S": ("policy_reload_s", "30", 30.0),
    },
    AuthnSettings: {
        "ACCORD_AUTHN_PORT": ("http_port", "9705", 9705),
        "ACCORD_AUTHN_PUBLIC_URL": ("public_url", "https://authn.example", "https://authn.example"),
        "ACCORD_AUTHN_CREDENTIAL_KEYS": ("credential_keys", "k1:AAAA", "k1:AAAA"),
        "ACCORD_TOTP_ISSUER": ("totp_issuer", "Example", "Example"),
        "ACCORD_WEBAUTHN_RP_ID": ("webauthn_rp_id", "example.org", "example.org"),
        "ACCORD_WEBAUTHN_RP_NAME": ("webauthn_rp_name", "Example", "Example"),
        "ACCORD_WEBAUTHN_ORIGINS": (
            "webauthn_origins",
            "https://a,https://b",
            "https://a,https://b",
        ),
        "ACCORD_AUTHN_CHALLENGE_TTL_S": ("challenge_ttl_s", "60", 60.0),
        "ACCORD_LOCKOUT_THRESHOLD": ("lockout_threshold", "3", 3),
        "ACCORD_LOCKOUT_WINDOW_S": ("lockout_window_s", "120", 120.0),
        "ACCORD_SSF_SIGNING_KEY_FILE": ("ssf_signing_key_file", "ssf.pem", Path("ssf.pem")),
        "ACCORD_SSF_TRANSMITTERS_FILE": ("ssf_transmitters_file", "t.yaml", Path("t.yaml")),
        "ACCORD_SSF_PUSH_TIMEOUT_S": ("ssf_push_timeout_s", "2", 2.0),
        "ACCORD_SSF_MAX_AGE_S": ("ssf_max_age_s", "30", 30.0),
        "ACCORD_SSF_ALLOW_HTTP": ("ssf_allow_http", "true", True),
        "ACCORD_SSF_DELIVERY_POLL_S": ("ssf_delivery_poll_s", "0.1", 0.1),
    },
    AuditorSettings: {
        "ACCORD_AUDITOR_PORT": ("http_port", "9704", 9704),
        "ACCORD_AUDIT_FETCH_MAX_WAIT_MS": ("audit_fetch_max_wait_ms", "250", 250),
        "ACCORD_AUDIT_FETCH_MIN_BYTES": ("audit_fetch_min_bytes", "1", 1),
        "ACCORD_AUDIT_REDACT_FIELDS": ("redact_fields", "email,phone", "email,phone"),
        "ACCORD_AUDIT_SIGNING_KEY_FILE": ("signing_key_file", "audit.pem", Path("audit.pem")),
        "ACCORD_AUDIT_CHECKPOINT_DIR": ("checkpoint_dir", "/var/ckpt", Path("/var/ckpt")),
        "ACCORD_AUDIT_CHECKPOINT_S": ("checkpoint_every_s", "60", 60.0),
        "ACCORD_AUDIT_VERIFY_INTERVAL_S": ("verify_interval_s", "0", 0.0),
        "ACCORD_AUDIT_AGGREGATES": ("audit_aggregates", "off", False),
        "ACCORD_AUDIT_AGGREGATES_GRACE_S": ("audit_aggregates_grace_s", "3", 3.0),
        "ACCORD_AUDIT_AGGREGATES_HORIZON_S": ("audit_aggregates_horizon_s", "600", 600.0),
    },
}

SHARED_DEFAULTS: dict[str, Any] = {
    "database_url": "postgresql://postgres@127.0.0.1:5432/accord",
    "http_host": "127.0.0.1",
    "log_level": "INFO",
    "log_format": "json",
    "create_topics": True,
    "topic_replication": 1,
    "topic_partitions": 3,
    "broker": "kafka",
    "fetch_max_wait_ms": None,
    "idle_fetch_max_wait_ms": None,
    "idle_after_s": 2.0,
    "session_timeout_ms": 6000,
    "db_pool_size": 10,
    "shutdown_timeout_s": 20.0,
    "max_handler_attempts": 3,
    "oidc_issuer": None,
    "oidc_audience": "accord",
    "oidc_jwks_url": None,
    "oidc_roles_claim": "roles",
    "max_body_bytes": 1048576,
    "rate_limit_per_s": 50.0,
    "rate_limit_burst": 100,
    "application_rate_limit_per_s": 5000.0,
    "application_rate_limit_burst": 10000,
    "auth_failures_per_min": 30.0,
    "auth_failures_burst": 10,
}

OWN_DEFAULTS: dict[type[ServiceSettings], dict[str, Any]] = {
    ServiceSettings: {},
    OrchestratorSettings: {
        "http_port": 8701,
        "birthright_targets": "scim-demo",
        "birthright_file": None,
        "joiner_mfa_factors": "",
        "joiner_on_failure": "keep",
        "leaver_retention_s": 2592000.0,
        "saga_retry_base_s": 30.0,
        "saga_retry_cap_s": 900.0,
        "saga_transient_rounds": 5,
        "saga_step_timeout_s": 600.0,
        "timer_poll_s": 1.0,
        "workflows_dir": None,
        "targets_file": None,
        "authn_url": None,
        "authn_token_file": None,
        "authz_url": None,
        "authz_token_file": None,
        "workflow_callback_url": None,
    },
    ProvisionerSettings: {"http_port": 8702, "targets_file": Path("targets.yaml")},
    AuthzSettings: {
        "http_port": 8703,
        "policy_dir": default_policy_dir(),
        "approval_timeout_s": 259200.0,
        "approval_on_timeout": "escalate",
        "timer_poll_s": 1.0,
        "decision_log_rate": 1.0,
        "policy_reload_s": 5.0,
    },
    AuthnSettings: {
        "http_port": 8705,
        "public_url": "http://127.0.0.1:8705",
        "credential_keys": None,
        "totp_issuer": "Accord",
        "webauthn_rp_id": "localhost",
        "webauthn_rp_name": "Accord",
        "webauthn_origins": "http://localhost:8705",
        "challenge_ttl_s": 300.0,
        "lockout_threshold": 5,
        "lockout_window_s": 600.0,
        "ssf_signing_key_file": None,
        "ssf_transmitters_file": None,
        "ssf_push_timeout_s": 5.0,
        "ssf_max_age_s": 300.0,
        "ssf_allow_http": False,
        "ssf_delivery_poll_s": 0.5,
    },
    AuditorSettings: {
        "http_port": 8704,
        "audit_fetch_max_wait_ms": None,
        "audit_fetch_min_bytes": 65536,
        "redact_fields": "",
        "signing_key_file": None,
        "checkpoint_dir": None,
        "checkpoint_every_s": 300.0,
        "verify_interval_s": 300.0,
        "audit_aggregates": True,
        "audit_aggregates_grace_s": 10.0,
        "audit_aggregates_horizon_s": 3600.0,
    },
}

#: A value out of bounds (or of the wrong kind) for some variables: refused, the variable named.
REFUSED: list[tuple[type[ServiceSettings], str, str]] = [
    (ServiceSettings, "ACCORD_TOPIC_REPLICATION", "0"),
    (ServiceSettings, "ACCORD_KAFKA_SESSION_TIMEOUT_MS", "999"),
    (ServiceSettings, "ACCORD_DB_POOL_SIZE", "1"),
    (ServiceSettings, "ACCORD_BROKER", "rabbit"),
    (ServiceSettings, "ACCORD_MAX_BODY_BYTES", "1023"),
    (OrchestratorSettings, "ACCORD_ORCHESTRATOR_PORT", "eighty"),
    (OrchestratorSettings, "ACCORD_JOINER_MFA_FACTORS", "sms"),
    (OrchestratorSettings, "ACCORD_SAGA_TRANSIENT_ROUNDS", "101"),
    (ProvisionerSettings, "ACCORD_PROVISIONER_PORT", "x"),
    (AuthzSettings, "ACCORD_DECISION_LOG_RATE", "1.5"),
    (AuthzSettings, "ACCORD_APPROVAL_ON_TIMEOUT", "ignore"),
    (AuthnSettings, "ACCORD_AUTHN_CHALLENGE_TTL_S", "3601"),
    (AuthnSettings, "ACCORD_LOCKOUT_THRESHOLD", "0"),
    (AuditorSettings, "ACCORD_AUDIT_CHECKPOINT_S", "0"),
    (AuditorSettings, "ACCORD_AUDIT_VERIFY_INTERVAL_S", "-1"),
    (AuditorSettings, "ACCORD_AUDIT_AGGREGATES_GRACE_S", "-1"),
]


def every_variable(cls: type[ServiceSettings]) -> Variables:
    return {**SHARED, **OWN[cls]}


CASES = [(cls, name) for cls in OWN for name in every_variable(cls)]


def case_id(case: tuple[type[ServiceSettings], str]) -> str:
    return f"{case[0].__name__}-{case[1]}"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable a settings class could read, so the defaults show."""
    fields = {name for cls in OWN for name in cls.model_fields}
    for name in list(os.environ):
        if name.upper().startswith("ACCORD_") or name.lower() in fields | {"database_url"}:
            monkeypatch.delenv(name)


def value_of(settings: ServiceSettings, field: str) -> Any:
    value = getattr(settings, field)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_the_lists_cover_every_field() -> None:
    for cls, own in OWN.items():
        listed = {field for field, _, _ in every_variable(cls).values()}
        assert listed == set(cls.model_fields), cls.__name__
        assert set(SHARED_DEFAULTS) | set(OWN_DEFAULTS[cls]) == listed, cls.__name__
        assert len(own) == len({field for field, _, _ in own.values()}), cls.__name__


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_variable_is_read_from_the_environment(
    case: tuple[type[ServiceSettings], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls, name = case
    field, raw, expected = every_variable(cls)[name]
    monkeypatch.setenv(name, raw)
    assert value_of(cls(), field) == expected


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_mapping_keyed_by_variable_names_validates(
    case: tuple[type[ServiceSettings], str],
) -> None:
    """As the deployment tests check their files: Settings.model_validate(environment)."""
    cls, name = case
    field, raw, expected = every_variable(cls)[name]
    assert value_of(cls.model_validate({name: raw}), field) == expected


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_field_is_also_given_by_its_name(
    case: tuple[type[ServiceSettings], str],
) -> None:
    """As the tests build their settings: Settings(field=value)."""
    cls, name = case
    field, raw, expected = every_variable(cls)[name]
    assert value_of(cls(**{field: raw}), field) == expected


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_keyword_argument_beats_the_environment(
    case: tuple[type[ServiceSettings], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls, name = case
    field, raw, _ = every_variable(cls)[name]
    monkeypatch.setenv(name, raw)
    default = {**SHARED_DEFAULTS, **OWN_DEFAULTS[cls]}[field]
    if default is None:
        return  # None is "unset": nothing to give by keyword
    assert value_of(cls(**{field: default}), field) == default


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("cls", list(OWN), ids=lambda cls: cls.__name__)
def test_the_defaults_are_unchanged(cls: type[ServiceSettings]) -> None:
    settings = cls()
    defaults = {**SHARED_DEFAULTS, **OWN_DEFAULTS[cls]}
    assert {field: value_of(settings, field) for field in cls.model_fields} == defaults


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("cls", "name", "raw"), REFUSED, ids=[f"{c.__name__}-{n}" for c, n, _ in REFUSED]
)
def test_a_value_out_of_bounds_is_refused_naming_the_variable(
    cls: type[ServiceSettings], name: str, raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`accord` reports the first problem's location: the variable, not a field name."""
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValidationError) as refused:
        cls()
    assert [error["loc"] for error in refused.value.errors()] == [(name,)]


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_field_name_in_the_environment_is_not_a_setting(
    case: tuple[type[ServiceSettings], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stray HTTP_HOST or LOG_LEVEL in a container is not Accord's: only the variable is
    read (keyword arguments may still name the field)."""
    cls, name = case
    field, raw, _ = every_variable(cls)[name]
    if field.upper() == name:
        pytest.skip(f"{name} is the field's own name")
    monkeypatch.setenv(field.upper(), raw)
    monkeypatch.setenv(field, raw)
    assert value_of(cls(), field) == value_of(cls.model_construct(), field)
