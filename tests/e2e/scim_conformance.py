"""Runs scim2-tester (the python-scim project's conformance checker) against a SCIM server."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server, filling
from scim2_tester.checkers import patch_add, patch_replace

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


def _with_date_times(generate: Callable[..., Any]) -> Callable[..., Any]:
    """scim2-tester's value generator, giving a dateTime attribute a date-time.

    scim2-tester (0.5.2) fills an attribute of a type it has no case for with a UUID string,
    which its own model of a dateTime attribute (Accord's lifecycle hireDate, leaveDate)
    refuses before any request is sent; the core schemas have no writable dateTime.
    """

    def generate_random_value(context: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        value = generate(context, path, *args, **kwargs)
        binding = path.resolve()
        if value is None or binding is None or binding.target_type is not datetime:
            return value
        now = datetime.now(UTC).replace(microsecond=0)
        return [now] if isinstance(value, list) else now

    return generate_random_value


@contextlib.contextmanager
def _date_times_generated() -> Iterator[None]:
    """scim2-tester with `_with_date_times`, where its modules hold the generator."""
    modules = (filling, patch_add, patch_replace)
    original = filling.generate_random_value
    patched = _with_date_times(original)
    for module in modules:
        module.generate_random_value = patched  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module.generate_random_value = original  # type: ignore[attr-defined]


def check(base_url: str, token: str) -> Conformance:
    """Every check scim2-tester has, against base_url (blocking: run it in a thread)."""
    with (
        httpx2.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http,
        _date_times_generated(),
    ):
        client = PoliteClient(http)
        return Conformance(check_server(client, raise_exceptions=False))
