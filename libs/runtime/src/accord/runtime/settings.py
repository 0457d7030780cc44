"""Settings shared by every service; each service subclasses with its own fields."""

from __future__ import annotations

from pydantic import AliasGenerator, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from accord.events.brokers import DEFAULT_BROKER, BrokerName, BrokerProfile, profile_named
from accord.events.topic_layout import TopicSettings

#: A service's variables are ACCORD_<FIELD>; a field whose variable is named otherwise
#: (DATABASE_URL, ACCORD_KAFKA_*, each service's port) says so with its validation_alias.
ENV_PREFIX = "ACCORD_"


def variable_name(field: str) -> str:
    """The environment variable of a field that names none itself: ACCORD_<FIELD>."""
    return ENV_PREFIX + field.upper()


class ServiceSettings(BaseSettings):
    """Read once in `main`, passed down; secrets are SecretStr and never logged.

    The prefix makes each field's validation alias rather than pydantic-settings'
    env_prefix: with env_prefix a value that does not parse would be reported under the
    field's name instead of its variable (`accord` prints that location), a mapping keyed
    by variable names (Settings.model_validate(environment), as the deployment tests check
    their files) would be ignored, and the set of variable names read would change.
    populate_by_name: code and tests give fields by name (ServiceSettings(http_port=...)),
    but the environment is read by variable name only: a stray HTTP_HOST or LOG_LEVEL in a
    container is not Accord's setting (pydantic-settings would read field names too).
    """

    model_config = SettingsConfigDict(
        extra="ignore",
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=variable_name),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments by field name or variable; the environment by variable only."""
        if isinstance(env_settings, EnvSettingsSource):
            env_settings.config = {
                **env_settings.config,
                "populate_by_name": False,
                "validate_by_name": False,
            }
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/accord"),
        validation_alias="DATABASE_URL",
        description="PostgreSQL DSN; each service keeps its tables in its own schema.",
    )
    http_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: str = "json"
    create_topics: bool = Field(
        default=True,
        description="Create missing topics at start-up; off where Strimzi or an admin owns them.",
    )
    topic_replication: int = Field(default=1, ge=1)
    topic_partitions: int = Field(default=3, ge=1)
    broker: BrokerName = Field(
        default=DEFAULT_BROKER,
        description="The broker's kind (kafka or tansu): what the clients may ask of it.",
    )
    fetch_max_wait_ms: int | None = Field(
        default=None,
        ge=0,
        validation_alias="ACCORD_KAFKA_FETCH_MAX_WAIT_MS",
        description=(
            "The consumers' fetch wait while records flow; unset: the broker's (Apache Kafka"
            " 50 ms, Tansu 20 ms; see accord.events.brokers)."
        ),
    )
    idle_fetch_max_wait_ms: int | None = Field(
        default=None,
        ge=0,
        validation_alias="ACCORD_KAFKA_IDLE_FETCH_MAX_WAIT_MS",
        description=(
            "The fetch wait once a service's topics have been quiet for"
            " ACCORD_KAFKA_IDLE_AFTER_S; unset: the broker's (Apache Kafka 500 ms, Tansu"
            " 200 ms); at or below the fetch wait: never changes."
        ),
    )
    idle_after_s: float = Field(default=2.0, gt=0, validation_alias="ACCORD_KAFKA_IDLE_AFTER_S")
    session_timeout_ms: int = Field(
        default=6000, ge=1000, validation_alias="ACCORD_KAFKA_SESSION_TIMEOUT_MS"
    )
    db_pool_size: int = Field(default=10, ge=2)
    shutdown_timeout_s: float = Field(default=20.0, gt=0)
    max_handler_attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts for an event whose handler keeps failing before it is dead-lettered.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="Accept OIDC access tokens from this issuer (exact `iss`).",
    )
    oidc_audience: str = "accord"
    oidc_jwks_url: str | None = Field(
        default=None,
        description="The issuer's JSON Web Key Set; required with ACCORD_OIDC_ISSUER.",
    )
    oidc_roles_claim: str = Field(
        default="roles",
        description="Claim with the caller's Accord roles; dotted paths (realm_access.roles).",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    rate_limit_per_s: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    application_rate_limit_per_s: float = Field(
        default=5000.0,
        gt=0,
        description="Request rate of each caller with the application role (decision API).",
    )
    application_rate_limit_burst: int = Field(default=10000, ge=1)
    auth_failures_per_min: float = Field(
        default=30.0,
        gt=0,
        description="Failed authentications allowed per client address before 429.",
    )
    auth_failures_burst: int = Field(default=10, ge=1)

    @property
    def broker_profile(self) -> BrokerProfile:
        """What the broker can do (accord.events.brokers)."""
        return profile_named(self.broker)

    @property
    def topic_layout(self) -> TopicSettings:
        """How the topics a service creates are laid out (min.insync.replicas follows the
        replication factor, as in the deployment files)."""
        return TopicSettings.for_replicas(self.topic_partitions, self.topic_replication)

    def fetch_wait_ms(self) -> int:
        """The consumers' fetch wait: the setting, else the broker's."""
        if self.fetch_max_wait_ms is not None:
            return self.fetch_max_wait_ms
        return self.broker_profile.fetch_max_wait_ms

    def idle_fetch_wait_ms(self) -> int | None:
        """The fetch wait after a quiet spell (None: no change)."""
        if self.idle_fetch_max_wait_ms is not None:
            return self.idle_fetch_max_wait_ms
        return self.broker_profile.idle_fetch_max_wait_ms
