"""Separation of duties: toxic combinations are forbid policies marked `@sod("why")`.

A request that would create one is denied by the policy itself (its @id is the reason).
Existing violations (from before a rule was added, or granted around it) are found by
asking, for every entitlement an identity holds, whether an @sod policy would forbid it
given the identity's other entitlements.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from accord.authz.adapters import grants
from accord.authz.adapters.directory import PostgresDirectory
from accord.authz.catalogue import Catalogue, entitlement_id
from accord.authz.domain.approvals import SOD_ANNOTATION
from accord.authz.domain.model import AccessQuery, Entity, EntityRef
from accord.authz.domain.policy_set import LoadedPolicies, decide


def sod_policies(policies: LoadedPolicies) -> dict[str, str]:
    """@id -> description of every separation-of-duties policy."""
    return {
        policy_id: annotations[SOD_ANNOTATION]
        for policy_id, annotations in policies.annotations.items()
        if SOD_ANNOTATION in annotations
    }


async def violations(
    conn: asyncpg.Connection, policies: LoadedPolicies, catalogue: Catalogue
) -> list[dict[str, Any]]:
    """Every (identity, entitlement) whose holding breaks an @sod policy, with the rule."""
    rules = sod_policies(policies)
    if not rules:
        return []
    holders = await conn.fetch(
        "SELECT principal_id, array_agg(application || '/' || entitlement ORDER BY"  # noqa: S608
        f" application, entitlement) AS held FROM grants WHERE {grants.LIVE}"
        " GROUP BY principal_id HAVING count(*) > 1 ORDER BY principal_id"
    )
    found = []
    for holder in holders:
        principal_id = holder["principal_id"]
        entities = await PostgresDirectory(conn).principal_entities(principal_id)
        for held in holder["held"]:
            application, entitlement = held.split("/", 1)
            others = {
                EntityRef("Entitlement", entitlement_id(*h.split("/", 1)))
                for h in holder["held"]
                if h != held
            }
            principal = _with_entitlements(entities[0], others)
            query = AccessQuery(
                principal=principal.ref,
                action="request",
                resource=EntityRef("Entitlement", entitlement_id(application, entitlement)),
            )
            decision = decide(
                policies,
                query,
                [principal, *entities[1:], *catalogue.resource_entities(application, entitlement)],
            )
            broken = [r for r in decision.reasons if r in rules]
            for rule in broken:
                found.append(
                    {
                        "principal_id": principal_id,
                        "application": application,
                        "entitlement": entitlement,
                        "policy": rule,
                        "description": rules[rule],
                        "held": list(holder["held"]),
                    }
                )
    return found


def _with_entitlements(principal: Entity, held: set[EntityRef]) -> Entity:
    attrs = {**principal.attrs, "entitlements": held}
    return Entity(principal.ref, attrs, principal.parents)
