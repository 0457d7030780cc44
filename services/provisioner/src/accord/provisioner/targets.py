"""The targets file: which systems to provision, and how to reach them.

Secrets are never in the file: it names environment variables that hold them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from accord.provisioner.adapters.sql import SqlSettings
from accord.runtime.config_file import load_yaml_model


class TargetsFileError(ValueError):
    """The targets file is missing, malformed or names an unset secret."""


class TargetBase(BaseModel):
    """What every target declares: its name, and how hard Accord may lean on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    """Every call's timeout."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    max_concurrency: int = Field(default=8, ge=1, le=256)
    """Calls in flight to this target at most."""
    rate_per_s: float | None = Field(default=None, gt=0, le=100_000)
    """Calls a second at most (e.g. Okta's API: 600 creates a minute = 10); none: unlimited."""
    breaker_threshold: int = Field(default=5, ge=1, le=1000)
    """Transient failures in a row that open the circuit (calls then fail at once)."""
    breaker_cooldown_s: float = Field(default=30.0, gt=0, le=3600)
    """How long an open circuit waits before one trial call."""
    reconcile_every_s: float | None = Field(default=None, ge=60, le=7 * 24 * 3600)
    """Reconcile the target this often (report drift and orphans, never repair); none: only
    on demand (`accord reconcile`)."""


class ScimTarget(TargetBase):
    """A SCIM 2.0 service provider."""

    kind: Literal["scim"]
    url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s]*)?$")
    token_env: str | None = None
    allow_link_local: bool = False
    """Allow a URL that resolves to a link-local or cloud metadata address (SSRF guard)."""

    def token(self) -> SecretStr | None:
        """The bearer token, read from the environment variable the file names."""
        if self.token_env is None:
            return None
        return _secret(self.name, self.token_env)


class LdapTarget(TargetBase):
    """An LDAP directory (OpenLDAP, 389-DS, ...): inetOrgPerson entries under people_dn."""

    kind: Literal["ldap"]
    url: str = Field(pattern=r"^ldaps?://[^\s/?#]+/?$")
    bind_dn: str = Field(min_length=3, max_length=512)
    password_env: str
    people_dn: str = Field(min_length=3, max_length=512)
    link_attribute: str = Field(default="description", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    """Holds `accord:<user_id>`, so an entry is recognised after a rename."""
    disable_attribute: str = Field(default="employeeType", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    disabled_value: str = Field(default="disabled", min_length=1, max_length=256)
    groups_dn: str | None = Field(default=None, min_length=3, max_length=512)
    """Where the groupOfNames entries are; without it, group memberships are refused."""
    empty_member_dn: str = Field(default="cn=empty-membership", min_length=3, max_length=512)
    """The member a group keeps when its last one leaves (never listed). The connector takes
    the entries it deletes or renames out of their groups itself; set the directory's
    refint_nothing, if it has refint, to the same DN for entries others delete."""
    allow_link_local: bool = False

    def password(self) -> SecretStr:
        """The bind password, read from the environment variable the file names."""
        return _secret(self.name, self.password_env)


class SqlTarget(TargetBase):
    """A table in another application's PostgreSQL database."""

    kind: Literal["sql"]
    dsn_env: str
    """The variable holding the DSN (with its password): never in the file."""
    table: str
    columns: dict[str, str] = Field(default_factory=dict)
    """Profile field -> column, e.g. {email: mail_address}."""
    id_column: str = "id"
    link_column: str = "accord_id"
    user_name_column: str = "user_name"
    active_column: str = "active"
    membership_table: str | None = None
    """Group membership rows (group name, account id); without it the target has no groups."""
    group_column: str = "group_name"
    member_column: str = "account_id"

    @property
    def url(self) -> str:
        """What the targets API shows: the table, never the DSN."""
        return f"sql:{self.table}"

    def dsn(self) -> SecretStr:
        """The DSN, read from the environment variable the file names."""
        return _secret(self.name, self.dsn_env)

    def settings(self, dsn: SecretStr) -> SqlSettings:
        """The connector's settings (its own checks: plain, quotable, unshared names)."""
        return SqlSettings(
            dsn=dsn,
            table=self.table,
            columns=dict(self.columns),
            id_column=self.id_column,
            link_column=self.link_column,
            user_name_column=self.user_name_column,
            active_column=self.active_column,
            timeout_s=self.timeout_s,
            membership_table=self.membership_table,
            group_column=self.group_column,
            member_column=self.member_column,
        )

    @model_validator(mode="after")
    def _names_are_plain(self) -> SqlTarget:
        self.settings(SecretStr("unused"))  # the connector's checks, at load rather than start
        return self


class WebhookTarget(TargetBase):
    """Any HTTP endpoint implementing Accord's signed webhook protocol."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s]*)?$")
    secret_env: str
    """The variable holding the HMAC secret."""
    allow_link_local: bool = False

    def secret(self) -> SecretStr:
        """The signing secret, read from the environment variable the file names."""
        return _secret(self.name, self.secret_env)


Target = Annotated[ScimTarget | LdapTarget | SqlTarget | WebhookTarget, Field(discriminator="kind")]


class TargetsFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: list[Target] = Field(default_factory=list)


def _secret(target: str, variable: str) -> SecretStr:
    value = os.environ.get(variable)
    if not value:
        raise TargetsFileError(f"target {target}: environment variable {variable} is not set")
    return SecretStr(value)


def load_targets(path: Path) -> TargetsFile:
    """Parse and validate a targets file."""
    parsed = load_yaml_model(path, TargetsFile, TargetsFileError)
    names = [t.name for t in parsed.targets]
    if len(names) != len(set(names)):
        raise TargetsFileError(f"{path}: target names must be unique")
    return parsed
