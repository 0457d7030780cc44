"""Listing the SCIM server's users page by page, as Okta imports and Entra ID syncs do.

Starts an embedded PostgreSQL, loads N users (default 100,000) as the storage writes them
(their JSON and folded form, computed by the storage's own code, inserted with COPY), then pages
through all of them with count=100 through PostgresScimStorage.search, and times a few
filtered searches (`userName sw`, `userName co`) and a few pages over HTTP through scim2-server's
app. --python measures the Python path instead (every resource read per search): it is O(N) per
page, so only --pages pages spread over the listing are timed, and the total is extrapolated.
Usage: python benchmarks/scim_listing.py [N ...] [--python] [--pages K]  (make bench-scim)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from scim2_models import ResourceType, ScimProvider, SearchRequest
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.storage import SearchPage
from scim2_server.utils import parametrize

from accord.orchestrator.adapters.scim_storage import PostgresScimStorage
from accord.orchestrator.scim.app import provider as scim_provider
from accord.runtime import db
from accord.stack.postgres import EmbeddedPostgres

SCHEMA = "orchestrator"
PAGE = 100
BATCH = 5_000
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]


class PythonPathStorage(PostgresScimStorage):
    """The storage as it was before issue 24: every search filters and pages in Python."""

    async def _sql_page(self, *args: Any, **kwargs: Any) -> SearchPage | None:
        return None


PLACEHOLDER = "0000000"
"""Where a user's number goes in its template: digits, which no comparison key changes."""


def payload(n: int, number: str) -> dict[str, Any]:
    first, last = FIRST[n % len(FIRST)], LAST[n // len(FIRST) % len(LAST)]
    return {
        "userName": f"{first.lower()}.{last.lower()}.{number}@example.com",
        "externalId": f"ext-{number}",
        "displayName": f"{first} {last} {number}",
        "name": {"givenName": first, "familyName": last},
        "active": n % 7 != 0,
        "title": ["Engineer", "Manager", "Analyst"][n % 3],
        "emails": [
            {"value": f"{first}.{last}.{number}@Example.com", "type": "work", "primary": True}
        ],
    }


async def load(
    pool: asyncpg.Pool, storage: PostgresScimStorage, user_type: ResourceType, count: int
) -> None:
    """Insert the rows the storage writes: data, version, timestamps and folded form.

    The storage's own code computes the data and the folded form of each kind of user once,
    with a placeholder for its number (folding 100,000 users one by one takes minutes): the
    rows are those the storage would write.
    """
    model = storage._model(user_type)
    templates: dict[tuple[int, ...], tuple[str, str | None]] = {}
    start = datetime.now(UTC) - timedelta(days=1)
    for first in range(0, count, BATCH):
        records = []
        for n in range(first, min(first + BATCH, count)):
            kind = (n % len(FIRST), n // len(FIRST) % len(LAST), n % 3, int(n % 7 != 0))
            if kind not in templates:
                with storage._provider:
                    resource = model.model_validate(payload(n, PLACEHOLDER))
                data = storage._data(resource)
                templates[kind] = (data, storage._folded(user_type, "id", data))
            data_template, folded_template = templates[kind]
            number = f"{n:07d}"
            data = data_template.replace(PLACEHOLDER, number)
            folded = folded_template and folded_template.replace(PLACEHOLDER, number)
            created = start + timedelta(microseconds=n)
            records.append(("User", uuid.uuid4().hex, data, 1, created, created, folded))
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "scim_resources",
                records=records,
                columns=[
                    "resource_type",
                    "id",
                    "data",
                    "version",
                    "created",
                    "last_modified",
                    "folded",
                ],
                schema_name=SCHEMA,
            )
    async with pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE scim_resources")


def request(model: Any, **parameters: Any) -> SearchRequest[Any]:
    return parametrize(SearchRequest, model)(**parameters)


async def timed_search(
    storage: PostgresScimStorage, user_type: ResourceType, search: SearchRequest[Any]
) -> tuple[float, SearchPage]:
    began = time.perf_counter()
    page = await storage.search([user_type], search)
    return time.perf_counter() - began, page


async def listing(
    storage: PostgresScimStorage, user_type: ResourceType, count: int, sample: int | None
) -> None:
    model = storage._model(user_type)
    starts = list(range(1, count + 1, PAGE))
    if sample is not None and len(starts) > sample:
        step = (len(starts) - 1) / (sample - 1)
        starts = sorted({starts[round(i * step)] for i in range(sample)})
    times: list[float] = []
    seen = 0
    for start in starts:
        took, page = await timed_search(
            storage, user_type, request(model, start_index=start, count=PAGE)
        )
        assert page.total == count, page.total
        seen += len(page.resources)
        times.append(took)
    pages = len(range(1, count + 1, PAGE))
    total = sum(times) if len(times) == pages else statistics.mean(times) * pages
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"  pages of {PAGE}: first {times[0] * 1000:.1f} ms, median"
        f" {statistics.median(times) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, last"
        f" {times[-1] * 1000:.1f} ms; listing all {pages} pages"
        f" {'took' if len(times) == pages else 'would take (extrapolated)'} {total:.2f} s"
        f" ({len(times)} pages timed, {seen} users read)"
    )
    for text in [
        'userName sw "grace.hopper.00001"',
        'userName co "per.00001"',
        'displayName co "ada" and active eq true',
    ]:
        runs = [
            await timed_search(storage, user_type, request(model, filter=text, count=PAGE))
            for _ in range(3)
        ]
        print(
            f"  filter {text}: {statistics.median(t for t, _ in runs) * 1000:.1f} ms"
            f" (median of 3), totalResults {runs[0][1].total}"
        )
    sort = [
        await timed_search(
            storage, user_type, request(model, sort_by="userName", start_index=start, count=PAGE)
        )
        for start in (1, max(1, count - PAGE + 1))
    ]
    print(
        f"  sortBy=userName, first and last page: {sort[0][0] * 1000:.1f} ms,"
        f" {sort[1][0] * 1000:.1f} ms"
    )


async def over_http(storage: PostgresScimStorage, described: ScimProvider, count: int) -> None:
    """A few pages through scim2-server's ASGI app: the JSON of a page on top of the search."""
    app = ASGIApplication(storage, described)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://scim") as client:
        times = []
        for start in (1, count // 2, max(1, count - PAGE + 1)):
            began = time.perf_counter()
            response = await client.get("/Users", params={"startIndex": start, "count": PAGE})
            times.append(time.perf_counter() - began)
            response.raise_for_status()
            assert len(response.json()["Resources"]) > 0
    print(
        "  over HTTP (first, middle, last page): " + ", ".join(f"{t * 1000:.1f} ms" for t in times)
    )


async def measure(dsn: str, count: int, python_path: bool, sample: int) -> None:
    await db.migrate(dsn, SCHEMA, ["accord.orchestrator.migrations"])
    pool = await db.create_pool(dsn, SCHEMA, max_size=4)
    try:
        described = scim_provider()
        kind = PythonPathStorage if python_path else PostgresScimStorage
        storage = kind(described, pool.acquire)
        user_type = next(rt for rt in described.resource_types if rt.id == "User")
        began = time.perf_counter()
        await load(pool, storage, user_type, count)
        print(
            f"{count:,} users ({'Python path' if python_path else 'SQL path'}):"
            f" loaded in {time.perf_counter() - began:.1f} s"
        )
        await listing(storage, user_type, count, sample if python_path else None)
        await over_http(storage, described, count)
    finally:
        await pool.close()


async def main(sizes: list[int], python_path: bool, sample: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        postgres = EmbeddedPostgres(Path(home) / "pg")
        await postgres.start()
        try:
            for count in sizes:
                conn = await asyncpg.connect(postgres.dsn)
                try:
                    await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
                finally:
                    await conn.close()
                await measure(postgres.dsn, count, python_path, sample)
        finally:
            await postgres.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000])
    parser.add_argument("--python", action="store_true", help="measure the Python path")
    parser.add_argument("--pages", type=int, default=5, help="pages timed on the Python path")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.sizes, arguments.python, arguments.pages))
