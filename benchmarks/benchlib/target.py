"""The cross-check in the target: exactly one account per joiner the run published."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

PAGE = 1000


async def accounts_of_run(
    base_url: str, token: str, prefix: str, expected: set[str]
) -> dict[str, Any]:
    """List the SCIM target's users whose userName starts with `prefix` and compare them with
    the user names published (`expected`)."""
    names: Counter[str] = Counter()
    total = None
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        start = 1
        while True:
            response = await client.get(
                "/Users",
                params={
                    "filter": f'userName sw "{prefix}"',
                    "startIndex": start,
                    "count": PAGE,
                    "attributes": "userName",
                },
            )
            response.raise_for_status()
            body = response.json()
            total = body.get("totalResults", 0)
            resources = body.get("Resources", [])
            names.update(r["userName"] for r in resources)
            start += len(resources)
            if not resources or start > total:
                break
    listed = set(names)
    return {
        "published": len(expected),
        "accounts": sum(names.values()),
        "total_results": total,
        "missing": len(expected - listed),
        "duplicated": sum(1 for count in names.values() if count > 1),
        "unexpected": len(listed - expected),
        "ok": listed == expected and all(count == 1 for count in names.values()),
    }
