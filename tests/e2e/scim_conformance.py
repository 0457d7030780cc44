"""Runs scim2-tester (the python-scim project's conformance checker) against a SCIM server."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

#: What the issue accepts: RFC MUSTs met (SUCCESS) or SHOULDs followed (COMPLIANT).
PASSING = frozenset({Status.SUCCESS, Status.COMPLIANT})
MAX_WAITS = 20


@dataclass(frozen=True)
class Conformance:
    """scim2-tester's verdicts."""

    results: list[CheckResult]

    @property
    def counts(self) -> Counter[str]:
        """How many checks got each status."""
        return Counter(r.status.name for r in self.results)

    def failures(self) -> list[str]:
        """Every check that is neither SUCCESS nor COMPLIANT, readable."""
        return [
            f"{r.status.name}: {r.resource_type or '-'}: {r.title}: {r.reason}"
            for r in self.results
            if r.status not in PASSING
        ]


class PoliteClient(SyncSCIMClient):
    """A SCIM client that waits as long as a 429's Retry-After says, as IdPs do."""

    def request(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        for _ in range(MAX_WAITS):
            response = super().request(method, url, **kwargs)
            if response.status_code != 429:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return response


def check(base_url: str, token: str) -> Conformance:
    """Every check scim2-tester has, against base_url (blocking: run it in a thread)."""
    with httpx2.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        client = PoliteClient(http)
        return Conformance(check_server(client, raise_exceptions=False))
