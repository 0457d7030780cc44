"""Shared fixtures of the accord.events unit tests: one valid sample payload per event type.

When a new event type is added to the catalogue, add a sample here:
`test_every_registered_type_has_a_sample` fails until you do.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from accord.events import REGISTRY, Envelope, EventData, new_event

#: libs/events: the folder holding the checked-in schemas/ and asyncapi.json.
EVENTS_FOLDER = Path(__file__).resolve().parents[2]

_RESOURCE = {"application": "crm", "entitlement": "crm-admin"}
_RUN = {
    "run_id": "run-1",
    "workflow_id": "pre-hire",
    "version": "3f9a0c12b7de",
    "identity_id": "e-1001",
    "category": "joiner",
}
_TASK = {**_RUN, "task_id": "open_ticket", "kind": "call_extension"}
_APPROVAL = {
    "approval_id": "run-1:approve:1",
    "user_id": "e-1001",
    "run_id": "run-1",
    "task_id": "approve",
}
_PROFILE = {
    "user_name": "ada",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "display_name": "Ada Lovelace",
    "email": "ada@example.org",
    "title": "Engineer",
    "department": "Research",
    "employee_number": "1001",
    "cost_center": "CC-42",
    "manager_id": "e-1000",
    "active": True,
    "employee_type": "contractor",
    "hire_date": "2025-03-03",
    "leave_date": "2026-02-27T18:00:00+00:00",
    "time_zone": "Europe/London",
    "attributes": {"location": "London", "building": "B2"},
}
_PROVISIONING = {
    "user_id": "e-1001",
    "target": "scim-demo",
    "operation": "create",
    "saga_id": "saga-1",
    "step_id": "saga-1:step-1",
}
_SAGA = {"saga_id": "saga-1", "saga_type": "joiner", "subject_id": "e-1001"}

#: A valid payload (as JSON-compatible data) of every event type, optional fields filled in.
SAMPLES: dict[str, dict[str, Any]] = {
    "user.created": {"user_id": "e-1001", **_PROFILE},
    "user.updated": {"user_id": "e-1001", **_PROFILE, "title": "Principal Engineer"},
    "user.deactivated": {"user_id": "e-1001", "reason": "parental leave"},
    "user.reactivated": {"user_id": "e-1001", "reason": "back from leave"},
    "user.deleted": {"user_id": "e-1001", "reason": "left the company"},
    "group.created": {"group_id": "g-eng", "display_name": "Engineers", "description": "All"},
    "group.updated": {"group_id": "g-eng", "display_name": "Engineering", "description": None},
    "group.deleted": {"group_id": "g-eng"},
    "group.members_changed": {"group_id": "g-eng", "added": ["e-1001"], "removed": ["e-1002"]},
    "access.requested": {
        "request_id": "req-1",
        "requester_id": "e-1000",
        "principal_id": "e-1001",
        "resource": _RESOURCE,
        "justification": "on-call rotation",
        "duration_seconds": 3600,
    },
    "access.decided": {
        "request_id": "req-1",
        "principal_id": "e-1001",
        "resource": _RESOURCE,
        "decision": "approval_required",
        "reasons": ["policy-crm-admin", "sod-finance"],
    },
    "access.granted": {
        "request_id": "req-1",
        "grant_id": "grant-1",
        "principal_id": "e-1001",
        "resource": _RESOURCE,
        "expires_at": "2030-01-01T00:00:00+00:00",
    },
    "access.revoked": {
        "request_id": "req-1",
        "grant_id": "grant-1",
        "principal_id": "e-1001",
        "resource": _RESOURCE,
        "reason": "expired",
        "provisioning": [{"target": "corp-ldap", "group": "crm-admins"}],
    },
    "access.approval_requested": {
        "request_id": "req-1",
        "principal_id": "e-1001",
        "resource": _RESOURCE,
        "stage": 1,
        "stages": 2,
        "stage_name": "manager",
        "approvers": ["e-0900"],
        "due_at": "2030-01-01T00:00:00+00:00",
        "escalated": False,
    },
    "access.approval_decided": {
        "request_id": "req-1",
        "principal_id": "e-1001",
        "stage": 1,
        "outcome": "approved",
        "approver_id": "e-0900",
        "comment": "ok for the quarter",
    },
    "authz.decided": {
        "decision_id": "dec-1",
        "principal_type": "User",
        "principal_id": "e-1001",
        "action": "read",
        "resource_type": "Document",
        "resource_id": "doc-7",
        "decision": "permit",
        "reasons": ["readers-read"],
        "sample_rate": 0.1,
    },
    "provision.requested": {**_PROVISIONING, "profile": _PROFILE},
    "account.provisioned": {
        **_PROVISIONING,
        "account_id": "2819c223-7f76",
        "already_existed": True,
    },
    "account.provision_failed": {
        **_PROVISIONING,
        "operation": "update",
        "reason": "target refused the change",
        "retryable": False,
    },
    "account.drift_detected": {
        "user_id": "e-1001",
        "target": "ldap",
        "run_id": "rec-7",
        "kind": "attributes",
        "account_id": "uid=ada,ou=people,dc=example,dc=org",
        "differences": [{"field": "title", "expected": "Analyst", "actual": "Boss"}],
        "repair_requested": True,
    },
    "account.orphan_detected": {
        "target": "ldap",
        "run_id": "rec-7",
        "account_id": "uid=eve,ou=people,dc=example,dc=org",
        "user_name": "eve",
        "owner": None,
        "reason": "unlinked",
    },
    "reconciliation.completed": {
        "target": "ldap",
        "run_id": "rec-7",
        "accounts": 120,
        "in_sync": 117,
        "drifted": 1,
        "missing": 1,
        "orphans": 1,
        "repairs_requested": 2,
        "duration_ms": 840,
    },
    "saga.started": {**_SAGA, "targets": ["scim-demo", "ldap"]},
    "saga.completed": {**_SAGA, "duration_ms": 1234},
    "saga.failed": {**_SAGA, "reason": "provisioning failed", "failed_targets": ["ldap"]},
    "audit.recorded": {
        "record_id": 7,
        "source_event_id": "4f1c0a3e-0d39-4c55-9a55-3b0f2a1e2d10",
        "source_topic": "user.created.dlq",
        "event_type_recorded": "user.created",
        "occurred_at": "2024-05-01T12:00:00+02:00",
        "actor": "urn:hr:workday",
        "subject": "e-1001",
        "target": "scim-demo",
        "outcome": "failure",
        "correlation_id": "corr-1",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "payload": {"user_id": "e-1001", "email": "***", "nested": {"list": [1, 2.5, None]}},
    },
    "audit.metrics": {
        "window_start": "2024-05-01T12:00:00Z",
        "window_seconds": 60,
        "records": 9,
        "late_records": 1,
        "counts": [
            {"event_type": "user.created", "outcome": "info", "count": 2},
            {"event_type": "account.provisioned", "outcome": "success", "count": 3},
            {"event_type": "account.provision_failed", "outcome": "failure", "count": 1},
            {"event_type": "saga.completed", "outcome": "success", "count": 2},
            {"event_type": "other", "outcome": "failure", "count": 1},
        ],
        "targets": [
            {
                "target": "scim-demo",
                "requested": 2,
                "attempts": 2,
                "failures": 0,
                "failure_rate": 0.0,
                "latency": {
                    "joiners": 2,
                    "samples": 2,
                    "p50_ms": 840,
                    "p90_ms": 1210,
                    "p99_ms": 1210,
                    "max_ms": 1210,
                },
            },
            {"target": "ldap", "requested": 2, "attempts": 2, "failures": 1, "failure_rate": 0.5},
        ],
        "latency": {
            "joiners": 1,
            "samples": 1,
            "p50_ms": 1210,
            "p90_ms": 1210,
            "p99_ms": 1210,
            "max_ms": 1210,
        },
    },
    "authn.succeeded": {
        "user_id": "e-1001",
        "idp": "okta",
        "application": "payroll",
        "ip": "203.0.113.7",
        "methods": ["pwd", "otp"],
        "session_id": "sess-1",
    },
    "authn.failed": {
        "user_id": "e-1001",
        "idp": "okta",
        "application": "payroll",
        "ip": "203.0.113.7",
        "methods": ["pwd"],
        "reason": "bad password",
    },
    "mfa.enrolment_requested": {
        "user_id": "e-1001",
        "factors": ["webauthn", "totp"],
        "saga_id": "saga-1",
    },
    "mfa.enrolled": {
        "user_id": "e-1001",
        "credential_id": "cred-1",
        "factor": "totp",
        "label": "phone",
    },
    "mfa.removed": {
        "user_id": "e-1001",
        "credential_id": "cred-1",
        "factor": "webauthn",
        "reason": "removed by its owner",
    },
    "identity.locked": {
        "user_id": "e-1001",
        "lockout_id": "lock-1",
        "reason": "5 failed sign-ins within 600 s",
        "failures": 5,
    },
    "identity.unlocked": {"user_id": "e-1001", "lockout_id": "lock-1", "request_id": "req-1"},
    "session.revoked": {"user_id": "e-1001", "reason": "leaver", "streams": 2},
    "authn.access_pass_issued": {
        "user_id": "e-1001",
        "pass_id": "tap-1",
        "issued_by": "helpdesk",
        "starts_at": "2026-03-02T08:00:00+01:00",
        "expires_at": "2026-03-03T08:00:00+01:00",
        "one_time": True,
    },
    "authn.access_pass_redeemed": {"user_id": "e-1001", "pass_id": "tap-1", "redeemed_by": "okta"},
    "workflow.run_started": {**_RUN, "trigger": "user.created"},
    "workflow.run_completed": dict(_RUN),
    "workflow.run_failed": {**_RUN, "reason": "task create_accounts failed"},
    "workflow.run_cancelled": {**_RUN, "reason": "the hire was rescinded"},
    "workflow.task_completed": {**_TASK, "output_keys": ["ticket_id", "approved"]},
    "workflow.task_failed": {**_TASK, "reason": "the extension answered 422"},
    "workflow.task_skipped": {**_TASK, "reason": "its when condition did not hold"},
    "workflow.task_waiting": {
        **_TASK,
        "waiting_for": "callback",
        "until": "2026-03-02T08:00:00+01:00",
    },
    "approval.requested": {
        **_APPROVAL,
        "workflow_id": "contractor-end-date",
        "approvers": ["manager", "group:it-leads", "user:e-2002"],
        "reason": "extend the contract by 3 months?",
        "expires_at": "2026-03-05T08:00:00+01:00",
        "escalation": False,
    },
    "approval.decided": {
        **_APPROVAL,
        "approved": True,
        "decided_by": "e-2002",
        "decided_at": "2026-03-03T10:15:00+01:00",
    },
    "session.revoke_requested": {
        "user_id": "e-1001",
        "request_id": "run-1:revoke:1",
        "reason": "leaver",
        "run_id": "run-1",
    },
    "source.run_completed": {
        "run_id": "0f4c2d9e-5b1a-4c3e-9d2f-7a8b6c5d4e3f",
        "source": "hr-export",
        "outcome": "held",
        "trigger": "schedule",
        "rows_read": 10000,
        "created": 2,
        "updated": 40,
        "linked": 1,
        "deactivated": 3,
        "reactivated": 0,
        "deleted": 5000,
        "problems": 4,
        "reason": "5000 deletions are 50.0 % of 10000 active (limit 5 %)",
    },
    "security.signal_received": {
        "user_id": "e-1001",
        "issuer": "https://idp.example.com",
        "jti": "4d3559ec67504aaba65d40b0363faad8",
        "event": "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
        "action": "revoke_sessions",
    },
}


def sample_dict(event_type: str) -> dict[str, Any]:
    """A fresh deep copy of the sample data of a type (safe to mutate)."""
    if event_type not in SAMPLES:
        pytest.fail(f"no sample for {event_type!r}: add one to SAMPLES in {__file__}")
    return copy.deepcopy(SAMPLES[event_type])


def sample_event(event_type: str) -> EventData:
    """The sample data of a type, validated into its model."""
    return REGISTRY.spec(event_type).model.model_validate(sample_dict(event_type))


def sample_envelope(event_type: str, **options: Any) -> Envelope:
    """A complete envelope around the sample data; identity events get a sequence."""
    if REGISTRY.spec(event_type).model.identity_event:
        options.setdefault("sequence", 42)
    options.setdefault("source", "urn:test:unit")
    options.setdefault("time", datetime(2024, 5, 1, 10, 30, 15, 123456, tzinfo=UTC))
    return new_event(sample_event(event_type), **options)


@pytest.fixture
def samples() -> Callable[[str], dict[str, Any]]:
    """Factory: event type -> fresh sample data dict."""
    return sample_dict


@pytest.fixture
def make_event() -> Callable[[str], EventData]:
    """Factory: event type -> sample payload model."""
    return sample_event


@pytest.fixture
def make_envelope() -> Callable[..., Envelope]:
    """Factory: event type (+ new_event options) -> sample envelope."""
    return sample_envelope


@pytest.fixture
def events_folder() -> Path:
    """libs/events, where the checked-in schemas live."""
    return EVENTS_FOLDER


@pytest.fixture
def no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KAFKA_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("KAFKA_"):
            monkeypatch.delenv(name)
