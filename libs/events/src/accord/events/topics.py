"""Topic names: the one place where a topic string is spelled out.

Topics are named by event type (`user.created`), dead letters go to `<topic>.dlq`.
"""

from __future__ import annotations

DLQ_SUFFIX = ".dlq"

USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DEACTIVATED = "user.deactivated"
USER_REACTIVATED = "user.reactivated"
USER_DELETED = "user.deleted"
GROUP_CREATED = "group.created"
GROUP_UPDATED = "group.updated"
GROUP_DELETED = "group.deleted"
GROUP_MEMBERS_CHANGED = "group.members_changed"
ACCESS_REQUESTED = "access.requested"
ACCESS_DECIDED = "access.decided"
ACCESS_GRANTED = "access.granted"
ACCESS_REVOKED = "access.revoked"
ACCESS_APPROVAL_REQUESTED = "access.approval_requested"
ACCESS_APPROVAL_DECIDED = "access.approval_decided"
AUTHZ_DECIDED = "authz.decided"
PROVISION_REQUESTED = "provision.requested"
ACCOUNT_PROVISIONED = "account.provisioned"
ACCOUNT_PROVISION_FAILED = "account.provision_failed"
ACCOUNT_DRIFT_DETECTED = "account.drift_detected"
ACCOUNT_ORPHAN_DETECTED = "account.orphan_detected"
RECONCILIATION_COMPLETED = "reconciliation.completed"
SAGA_STARTED = "saga.started"
SAGA_COMPLETED = "saga.completed"
SAGA_FAILED = "saga.failed"
AUDIT_RECORDED = "audit.recorded"
AUDIT_METRICS = "audit.metrics"
AUTHN_SUCCEEDED = "authn.succeeded"
AUTHN_FAILED = "authn.failed"
MFA_ENROLMENT_REQUESTED = "mfa.enrolment_requested"
MFA_ENROLLED = "mfa.enrolled"
MFA_REMOVED = "mfa.removed"
IDENTITY_LOCKED = "identity.locked"
IDENTITY_UNLOCKED = "identity.unlocked"
SESSION_REVOKED = "session.revoked"
SECURITY_SIGNAL_RECEIVED = "security.signal_received"
ACCESS_PASS_ISSUED = "authn.access_pass_issued"  # noqa: S105 (a topic, not a password)
ACCESS_PASS_REDEEMED = "authn.access_pass_redeemed"  # noqa: S105 (a topic)
WORKFLOW_RUN_STARTED = "workflow.run_started"
WORKFLOW_RUN_COMPLETED = "workflow.run_completed"
WORKFLOW_RUN_FAILED = "workflow.run_failed"
WORKFLOW_RUN_CANCELLED = "workflow.run_cancelled"
WORKFLOW_TASK_COMPLETED = "workflow.task_completed"
WORKFLOW_TASK_FAILED = "workflow.task_failed"
WORKFLOW_TASK_SKIPPED = "workflow.task_skipped"
WORKFLOW_TASK_WAITING = "workflow.task_waiting"
APPROVAL_REQUESTED = "approval.requested"
APPROVAL_DECIDED = "approval.decided"
SESSION_REVOKE_REQUESTED = "session.revoke_requested"
SOURCE_RUN_COMPLETED = "source.run_completed"

#: An identity's life cycle, as source systems publish it.
USER_TOPICS = (USER_CREATED, USER_UPDATED, USER_DEACTIVATED, USER_REACTIVATED, USER_DELETED)
#: Groups and their members.
GROUP_TOPICS = (GROUP_CREATED, GROUP_UPDATED, GROUP_DELETED, GROUP_MEMBERS_CHANGED)
#: What identity providers report of sign-ins.
AUTHN_TOPICS = (AUTHN_SUCCEEDED, AUTHN_FAILED)
#: What the workflow engine reports of its runs and their tasks.
WORKFLOW_TOPICS = (
    WORKFLOW_RUN_STARTED,
    WORKFLOW_RUN_COMPLETED,
    WORKFLOW_RUN_FAILED,
    WORKFLOW_RUN_CANCELLED,
    WORKFLOW_TASK_COMPLETED,
    WORKFLOW_TASK_FAILED,
    WORKFLOW_TASK_SKIPPED,
    WORKFLOW_TASK_WAITING,
)

#: Every event type, in the catalogue's order: what `accord publish --help` lists without
#: importing the models (a test keeps it equal to the registry's types).
EVENT_TYPES = (
    *USER_TOPICS,
    *GROUP_TOPICS,
    ACCESS_REQUESTED,
    ACCESS_DECIDED,
    ACCESS_GRANTED,
    ACCESS_REVOKED,
    ACCESS_APPROVAL_REQUESTED,
    ACCESS_APPROVAL_DECIDED,
    AUTHZ_DECIDED,
    PROVISION_REQUESTED,
    ACCOUNT_PROVISIONED,
    ACCOUNT_PROVISION_FAILED,
    ACCOUNT_DRIFT_DETECTED,
    ACCOUNT_ORPHAN_DETECTED,
    RECONCILIATION_COMPLETED,
    SAGA_STARTED,
    SAGA_COMPLETED,
    SAGA_FAILED,
    AUDIT_RECORDED,
    AUDIT_METRICS,
    AUTHN_SUCCEEDED,
    AUTHN_FAILED,
    MFA_ENROLMENT_REQUESTED,
    MFA_ENROLLED,
    MFA_REMOVED,
    IDENTITY_LOCKED,
    IDENTITY_UNLOCKED,
    SESSION_REVOKED,
    SECURITY_SIGNAL_RECEIVED,
    ACCESS_PASS_ISSUED,
    ACCESS_PASS_REDEEMED,
    *WORKFLOW_TOPICS,
    APPROVAL_REQUESTED,
    APPROVAL_DECIDED,
    SESSION_REVOKE_REQUESTED,
    SOURCE_RUN_COMPLETED,
)


def topic_for(event_type: str) -> str:
    """The topic that carries events of this type."""
    return event_type


def dlq_for(topic: str) -> str:
    """The dead-letter topic of a topic."""
    return topic + DLQ_SUFFIX


def is_dlq(topic: str) -> bool:
    """Whether a topic is a dead-letter topic."""
    return topic.endswith(DLQ_SUFFIX)
