"""In-memory fakes of the auditor's ports, for unit tests (kept honest by the contract tests
in tests/integration, which run the same cases on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import FastAPI

from accord.auditor.domain.chain import GENESIS
from accord.auditor.domain.chaining import ChainState, SourceKey, Stored, key_of
from accord.auditor.domain.normalise import AuditEntry
from accord.auditor.ports import AuditLog
from accord.runtime.http import create_app, secure
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Role

#: API tokens FakeTokens knows: an auditor's (audit:read) and a requester's (no audit:read).
AUDITOR_TOKEN = "acc_00000000000000a1_" + "A" * 43
REQUESTER_TOKEN = "acc_00000000000000b2_" + "B" * 43


@dataclass(frozen=True)
class FakeRecord:
    """A consumed record (accord.runtime.records.Record) as a test makes it."""

    topic: str
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    timestamp: int = -1


@dataclass
class FakeAuditLog:
    """The AuditLog port on a list: the records in chain order and the head."""

    records: list[Stored] = field(default_factory=list)
    head_id: int = 0
    head_hash: str = GENESIS

    async def chain_state(self, keys: Sequence[SourceKey]) -> ChainState:
        """The head, and which of these events the list holds."""
        held = {key_of(r.entry) for r in self.records}
        return ChainState(self.head_id, self.head_hash, frozenset(k for k in keys if k in held))

    async def append(self, records: Sequence[Stored]) -> None:
        """Keep the records; the head moves to the last."""
        if not records:
            return
        self.records.extend(records)
        self.head_id, self.head_hash = records[-1].record_id, records[-1].hash

    def rows(self) -> list[dict[str, Any]]:
        """The records as audit_log holds them (FIELDS, payload text, prev_hash, hash), for
        domain.chain.Verification."""
        return [
            {**r.fields, "payload": r.payload, "prev_hash": r.prev_hash, "hash": r.hash}
            for r in self.records
        ]


_IS_AN_AUDIT_LOG: Callable[[], AuditLog] = FakeAuditLog


def audit_entry(n: int, **overrides: Any) -> AuditEntry:
    """The n-th of a run of user.created entries (ten to a correlation id), with overrides."""
    values: dict[str, Any] = {
        "source_event_id": f"evt-{n}",
        "source_topic": "user.created",
        "event_type": "user.created",
        "occurred_at": datetime(2026, 11, 26, 9, 0, n % 60, 123456, tzinfo=UTC),
        "actor": "urn:hr",
        "subject": f"u-{n}",
        "target": None,
        "outcome": "info",
        "correlation_id": f"corr-{n // 10}",
        "trace_id": None,
        "payload": {
            "user_id": f"u-{n}",
            "display_name": "Zo\u00eb \u00e9\u4e16",
            "n": n,
            "f": 1e16,
        },
    }
    values.update(overrides)
    return AuditEntry(**values)


class FakeTokens:
    """The API token store, knowing AUDITOR_TOKEN and REQUESTER_TOKEN."""

    async def verify(self, token: str) -> Caller:
        """The caller of a known token; InvalidToken for any other."""
        roles = {AUDITOR_TOKEN: Role.AUDITOR, REQUESTER_TOKEN: Role.REQUESTER}
        if token not in roles:
            raise InvalidToken("unknown API token")
        return Caller("someone", frozenset({roles[token]}), "api-token", token[4:20])


def secured_app() -> FastAPI:
    """An auditor app as the runtime secures it (API tokens from FakeTokens), no routes yet."""

    async def ready() -> dict[str, Any]:
        return {"ready": True}

    app = create_app("auditor", ready)
    secure(app, max_body_bytes=1024)
    app.state.security = ApiSecurity(
        cast(TokenStore, FakeTokens()),
        None,
        per_caller=RateLimiter(1000, 1000),
        failures=RateLimiter(1000, 1000),
    )
    return app
