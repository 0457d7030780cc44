"""The inbound SCIM server passes scim2-tester: every check SUCCESS or COMPLIANT."""

from __future__ import annotations

import asyncio

import pytest

from accord.runtime.security.roles import Role
from accord.stack.platform import Platform

from . import scim_conformance

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def test_scim2_tester_finds_nothing_wrong(platform: Platform) -> None:
    token = await platform.issue_token("scim2-tester", {Role.SCIM_CLIENT})
    base_url = f"{platform.endpoints()['orchestrator']}/scim/v2"

    report = await asyncio.to_thread(scim_conformance.check, base_url, token)

    print(f"\nscim2-tester: {dict(report.counts)}")
    assert len(report.results) > 20, "scim2-tester ran only a handful of checks"
    assert report.failures() == []
