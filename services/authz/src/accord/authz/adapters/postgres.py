"""Authz's stores over PostgreSQL, bound to one connection (the handler's transaction)."""

from __future__ import annotations

import asyncpg

from accord.authz.adapters.approvals import PostgresApprovals
from accord.authz.adapters.authn_projection import PostgresAuthnFacts
from accord.authz.adapters.directory import PostgresDirectory, PostgresGroups
from accord.authz.adapters.grants import PostgresGrants
from accord.authz.adapters.requests import PostgresRequests
from accord.authz.adapters.store import PostgresPrincipals
from accord.authz.adapters.workflow_approvals import PostgresWorkflowApprovals
from accord.authz.ports import Stores


def postgres_stores(conn: asyncpg.Connection) -> Stores:
    """Every store on this connection (inside the caller's transaction)."""
    return Stores(
        principals=PostgresPrincipals(conn),
        groups=PostgresGroups(conn),
        directory=PostgresDirectory(conn),
        authn=PostgresAuthnFacts(conn),
        requests=PostgresRequests(conn),
        approvals=PostgresApprovals(conn),
        grants=PostgresGrants(conn),
        workflow_approvals=PostgresWorkflowApprovals(conn),
    )
