"""The Kafka access each Accord service needs: the one table behind the KafkaUsers and docs.

`accord deploy` renders it as Strimzi KafkaUser ACLs and as the table in docs/deployment.md,
and a test holds it against the services' own consumer routes, so the three cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from accord.events import REGISTRY, topics

USER_TOPICS = topics.USER_TOPICS
GROUP_TOPICS = topics.GROUP_TOPICS
AUDITOR_OWN = (topics.AUDIT_RECORDED, topics.AUDIT_METRICS)
AGGREGATES_APP = "accord-auditor-aggregates"
"""The auditor's faust app: its consumer group and the prefix of the topics it creates."""

OPERATIONS = ("Create", "Describe", "Read", "Write")
"""The Strimzi ACL operations Accord grants, in the order they are listed."""


@dataclass(frozen=True)
class ServiceAccess:
    """What one Kafka principal reads, writes and joins."""

    name: str
    reads: tuple[str, ...]
    """Topics its consumer group (`group`) reads."""
    writes: tuple[str, ...]
    """Topics it produces to (outbox relay, dead letters, replays)."""
    group: str | None
    """Its consumer group; None when it reads without one."""
    reads_dead_letters: bool = False
    """It also consumes the `.dlq` of each topic it reads (the auditor records them)."""
    dead_letters: bool = True
    """It dead-letters what it cannot handle to the `.dlq` of each topic it reads."""
    extra_reads: tuple[str, ...] = ()
    """Topics read outside `group` (the auditor's live view and stream aggregates)."""
    extra_groups: tuple[str, ...] = ()
    owned_prefixes: tuple[str, ...] = ()
    """Topic prefixes it creates and uses itself (faust's internal topics)."""

    @property
    def principal(self) -> str:
        """The Kafka user (KafkaUser name, SASL user name)."""
        return f"accord-{self.name}"

    @property
    def all_reads(self) -> list[str]:
        """Every topic it reads, dead-letter topics included."""
        dlqs = [topics.dlq_for(t) for t in self.reads] if self.reads_dead_letters else []
        return _unique([*self.reads, *dlqs, *self.extra_reads])

    @property
    def all_writes(self) -> list[str]:
        """Every topic it writes, dead-letter topics included."""
        dlqs = [topics.dlq_for(t) for t in self.reads] if self.dead_letters else []
        return _unique([*self.writes, *dlqs])

    @property
    def groups(self) -> list[str]:
        """Every consumer group it joins."""
        return _unique([*([self.group] if self.group else []), *self.extra_groups])


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


SERVICES: tuple[ServiceAccess, ...] = (
    ServiceAccess(
        name="orchestrator",
        group="accord-orchestrator",
        reads=(
            *USER_TOPICS,
            topics.ACCESS_GRANTED,
            topics.ACCESS_REVOKED,
            topics.ACCOUNT_PROVISIONED,
            topics.ACCOUNT_PROVISION_FAILED,
            topics.IDENTITY_LOCKED,
            topics.IDENTITY_UNLOCKED,
            topics.APPROVAL_DECIDED,
            topics.ACCESS_DECIDED,
            topics.ACCESS_APPROVAL_DECIDED,
            # its own saga ends, read back with its workflow engine on: a workflow task
            # saga's end answers its task
            topics.SAGA_COMPLETED,
            topics.SAGA_FAILED,
        ),
        # Its inbound SCIM server publishes the identity events of the IdPs that push to it;
        # its workflow engine reports runs and tasks, and asks authz for entitlements
        # (request_entitlement) on the identity's behalf, asks authz for approvals (approval)
        # and authn to end sessions (revoke_sessions).
        writes=(
            topics.SAGA_STARTED,
            topics.SAGA_COMPLETED,
            topics.SAGA_FAILED,
            *topics.WORKFLOW_TOPICS,
            topics.PROVISION_REQUESTED,
            topics.MFA_ENROLMENT_REQUESTED,
            topics.ACCESS_REQUESTED,
            topics.APPROVAL_REQUESTED,
            topics.SESSION_REVOKE_REQUESTED,
            *USER_TOPICS,
            *GROUP_TOPICS,
        ),
    ),
    ServiceAccess(
        name="provisioner",
        group="accord-provisioner",
        reads=(topics.PROVISION_REQUESTED,),
        writes=(
            topics.ACCOUNT_PROVISIONED,
            topics.ACCOUNT_PROVISION_FAILED,
            topics.ACCOUNT_DRIFT_DETECTED,
            topics.ACCOUNT_ORPHAN_DETECTED,
            topics.RECONCILIATION_COMPLETED,
        ),
    ),
    ServiceAccess(
        name="authz",
        group="accord-authz",
        reads=(
            *USER_TOPICS,
            *GROUP_TOPICS,
            topics.ACCESS_REQUESTED,
            topics.IDENTITY_LOCKED,
            topics.IDENTITY_UNLOCKED,
            topics.MFA_ENROLLED,
            topics.MFA_REMOVED,
            topics.APPROVAL_REQUESTED,
        ),
        # access.requested too: `POST /v1/access-requests` publishes the request it takes.
        writes=(
            topics.ACCESS_REQUESTED,
            topics.ACCESS_DECIDED,
            topics.ACCESS_APPROVAL_REQUESTED,
            topics.ACCESS_APPROVAL_DECIDED,
            topics.ACCESS_GRANTED,
            topics.ACCESS_REVOKED,
            topics.AUTHZ_DECIDED,
            topics.APPROVAL_DECIDED,
        ),
    ),
    ServiceAccess(
        name="auditor",
        group="accord-auditor",
        reads=tuple(t for t in REGISTRY.topics() if t not in AUDITOR_OWN),
        reads_dead_letters=True,
        writes=AUDITOR_OWN,
        # The live view reads audit.recorded without a group; the stream aggregates (faust)
        # read it in their own group and keep their state in topics of their own.
        extra_reads=(topics.AUDIT_RECORDED,),
        extra_groups=(AGGREGATES_APP,),
        owned_prefixes=(f"{AGGREGATES_APP}-",),
    ),
    ServiceAccess(
        name="authn",
        group="accord-authn",
        reads=(
            *USER_TOPICS,
            *topics.AUTHN_TOPICS,
            topics.ACCESS_GRANTED,
            topics.ACCESS_DECIDED,
            topics.MFA_ENROLMENT_REQUESTED,
            topics.MFA_ENROLLED,
            topics.SESSION_REVOKE_REQUESTED,
        ),
        # session.revoke_requested: a workflow's revoke_sessions (the orchestrator asks);
        # access.requested: unlock and factor-reset requests; authn.*: Accord's own factor
        # verifications count toward lockouts like an identity provider's.
        writes=(
            topics.ACCESS_REQUESTED,
            topics.IDENTITY_LOCKED,
            topics.IDENTITY_UNLOCKED,
            topics.SESSION_REVOKED,
            topics.SECURITY_SIGNAL_RECEIVED,
            topics.MFA_ENROLLED,
            topics.MFA_REMOVED,
            topics.ACCESS_PASS_ISSUED,
            topics.ACCESS_PASS_REDEEMED,
            *topics.AUTHN_TOPICS,
        ),
    ),
    ServiceAccess(
        name="sources",
        group="accord-sources",
        # Its projection of the identities (correlation, taken user names, sequences).
        reads=USER_TOPICS,
        # A batch handler's consumer subscribes to the .dlq of each topic too (the runtime
        # hands it the dead-lettered copies of undecodable records): it must read them.
        reads_dead_letters=True,
        writes=(*USER_TOPICS, topics.SOURCE_RUN_COMPLETED),
    ),
)
"""The six services."""

OPERATOR = ServiceAccess(
    name="operator",
    group=None,
    reads=(),
    extra_reads=tuple(topics.dlq_for(t) for t in REGISTRY.topics()),
    writes=tuple(REGISTRY.topics()),
    dead_letters=False,
)
"""A principal for operators' `accord dlq` (list reads the DLQs; replay writes the topics)."""


def principals() -> tuple[ServiceAccess, ...]:
    """Every principal a deployment creates: the six services and the operator."""
    return (*SERVICES, OPERATOR)


def strimzi_acls(access: ServiceAccess) -> list[dict[str, Any]]:
    """Strimzi `simple` authorization rules (KafkaUser spec.authorization.acls)."""
    operations: dict[str, set[str]] = {}
    for topic in access.all_reads:
        operations.setdefault(topic, set()).update({"Describe", "Read"})
    for topic in access.all_writes:
        operations.setdefault(topic, set()).update({"Describe", "Write"})
    rules = [
        _rule("topic", name, "literal", ops)
        for name, ops in sorted(operations.items(), key=lambda item: item[0])
    ]
    rules += [
        _rule("topic", prefix, "prefix", {"Create", "Describe", "Read", "Write"})
        for prefix in access.owned_prefixes
    ]
    rules += [_rule("group", group, "literal", {"Read"}) for group in access.groups]
    return rules


def _rule(kind: str, name: str, pattern: str, operations: set[str]) -> dict[str, Any]:
    return {
        "resource": {"type": kind, "name": name, "patternType": pattern},
        "operations": [op for op in OPERATIONS if op in operations],
        "host": "*",
    }


def markdown_table() -> str:
    """The ACL table of docs/deployment.md, one row per principal."""
    rows = [
        "| Kafka user | consumer groups (Read) | topics read (Read, Describe) "
        "| topics written (Write, Describe) |",
        "|---|---|---|---|",
    ]
    for access in principals():
        rows.append(
            f"| `{access.principal}` | {_groups_cell(access)} | {_reads_cell(access)} "
            f"| {_writes_cell(access)} |"
        )
    return "\n".join(rows) + "\n"


def _code(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _groups_cell(access: ServiceAccess) -> str:
    return _code(access.groups) if access.groups else "none"


def _reads_cell(access: ServiceAccess) -> str:
    if access is OPERATOR:
        return "every `.dlq`"
    if access.name == "auditor":
        return (
            "every topic except `audit.recorded` and `audit.metrics`, each with its `.dlq`; "
            "`audit.recorded` (live view, stream aggregates); "
            f"`{AGGREGATES_APP}-*` (prefix; Write and Create too: the aggregates' own topics)"
        )
    cell = _code(access.reads)
    if access.reads_dead_letters:
        cell += ", each with its `.dlq`"
    return cell


def _writes_cell(access: ServiceAccess) -> str:
    if access is OPERATOR:
        return "every topic (replay)"
    cell = _code(access.writes)
    if access.dead_letters:
        cell += ", and the `.dlq` of each topic it reads"
    return cell
