"""Settings shared by every service; each service subclasses with its own fields."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Read once in `main`, passed down; secrets are SecretStr and never logged."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/accord"),
        validation_alias=AliasChoices("DATABASE_URL"),
        description="PostgreSQL DSN; each service keeps its tables in its own schema.",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("ACCORD_HTTP_HOST"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("ACCORD_LOG_LEVEL"))
    log_format: str = Field(default="json", validation_alias=AliasChoices("ACCORD_LOG_FORMAT"))
    create_topics: bool = Field(
        default=True,
        validation_alias=AliasChoices("ACCORD_CREATE_TOPICS"),
        description="Create missing topics at start-up; off where Strimzi or an admin owns them.",
    )
    topic_replication: int = Field(
        default=1, ge=1, validation_alias=AliasChoices("ACCORD_TOPIC_REPLICATION")
    )
    topic_partitions: int = Field(
        default=3, ge=1, validation_alias=AliasChoices("ACCORD_TOPIC_PARTITIONS")
    )
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        validation_alias=AliasChoices("ACCORD_KAFKA_FETCH_MAX_WAIT_MS"),
        description="Upper bound on consume latency when a topic is idle.",
    )
    session_timeout_ms: int = Field(
        default=6000, ge=1000, validation_alias=AliasChoices("ACCORD_KAFKA_SESSION_TIMEOUT_MS")
    )
    db_pool_size: int = Field(
        default=10, ge=2, validation_alias=AliasChoices("ACCORD_DB_POOL_SIZE")
    )
    shutdown_timeout_s: float = Field(
        default=20.0, gt=0, validation_alias=AliasChoices("ACCORD_SHUTDOWN_TIMEOUT_S")
    )
    max_handler_attempts: int = Field(
        default=3,
        ge=1,
        validation_alias=AliasChoices("ACCORD_MAX_HANDLER_ATTEMPTS"),
        description="Attempts for an event whose handler keeps failing before it is dead-lettered.",
    )
