"""Auditor settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from accord.runtime.settings import ServiceSettings


class AuditorSettings(ServiceSettings):
    """Environment of the auditor."""

    http_port: int = Field(default=8704, validation_alias="ACCORD_AUDITOR_PORT")
    audit_fetch_max_wait_ms: int | None = Field(
        default=None,
        ge=0,
        description=(
            "The auditor's Kafka fetch wait: it reads every topic and its DLQ, and each poll of"
            " them costs the broker; on Tansu audit records may lag up to this much more."
            " Unset: the broker's (100 ms on Apache Kafka and on Tansu)."
        ),
    )
    audit_fetch_min_bytes: int = Field(
        default=65536,
        ge=1,
        description=(
            "While records flow, a fetch of the auditor's returns once this much has gathered"
            " or its fetch wait runs out: fewer, larger fetches of its many partitions (measured"
            " on Apache Kafka: about a tenth less of the auditor's CPU per joiner). Once its"
            " topics are quiet a fetch returns at the first record. 1: at the first record always."
        ),
    )
    redact_fields: str = Field(
        default="",
        validation_alias="ACCORD_AUDIT_REDACT_FIELDS",
        description="Comma-separated payload keys stored as [redacted] (PII policy).",
    )
    signing_key_file: Path | None = Field(
        default=None,
        validation_alias="ACCORD_AUDIT_SIGNING_KEY_FILE",
        description="Ed25519 private key (PEM) that signs chain checkpoints; none: no checkpoints.",
    )
    checkpoint_dir: Path | None = Field(
        default=None,
        validation_alias="ACCORD_AUDIT_CHECKPOINT_DIR",
        description="Folder the signed checkpoints are also written to (outside the database).",
    )
    checkpoint_every_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias="ACCORD_AUDIT_CHECKPOINT_S",
        description="Seconds between checkpoints (one only when the chain has grown).",
    )
    verify_interval_s: float = Field(
        default=300.0,
        ge=0,
        validation_alias="ACCORD_AUDIT_VERIFY_INTERVAL_S",
        description=(
            "Seconds between the auditor's verifications of the records appended to its chain"
            " since the last (accord_audit_verify_* metrics); 0: none."
        ),
    )
    audit_aggregates: bool = Field(
        default=True,
        description="Stream aggregates (faust) on audit.metrics and /metrics: on or off.",
    )
    audit_aggregates_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="A minute's window takes late records this long after it ends.",
    )
    audit_aggregates_horizon_s: float = Field(
        default=3600.0,
        gt=0,
        description="A joiner without news for this long is forgotten (not measured).",
    )

    def redactions(self) -> list[str]:
        """The redacted keys as a list."""
        return [f.strip() for f in self.redact_fields.split(",") if f.strip()]

    def audit_fetch_wait_ms(self) -> int:
        """The auditor consumer's fetch wait: the setting, else the broker's."""
        if self.audit_fetch_max_wait_ms is not None:
            return self.audit_fetch_max_wait_ms
        return self.broker_profile.audit_fetch_max_wait_ms
