"""The Users of another SCIM 2.0 service provider as a source, read page by page (RFC 7644).

`GET {url}/Users` with index paging (`startIndex`, `count`, section 3.4.2.4), the configured
`filter` and only the top-level attributes the paths need (`attributes=`): one page is in
memory at a time. The next page starts after the resources that came, not after `count`:
a provider may send fewer than asked for (many cap a page), so reading stops when the next
index passes `totalResults`, or on an empty page.

Index paging is no snapshot: a user created or deleted during the read shifts the pages, and
one would be skipped or read twice. A skipped user would look like a leaver, so a
`totalResults` that changes between pages, or pages that end before it is reached, fail the
run as `SourceUnavailable` (run it again); nothing is published from a torn read.

Each resource becomes a row: `id`, then each configured field (`scim_path` reads it; absent:
""). A resource that is no JSON object, has no id, or whose path names no single value is a
row problem. The resources are read as JSON, not as scim2-models objects: a provider's
resource that such a model refuses (an odd extension, a malformed e-mail) must cost one row,
not the page. The token is sent as a bearer token and never appears in a message.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from accord.sources.config import ScimOptions
from accord.sources.csv_reader import SourceRow
from accord.sources.problems import ProblemKind, RowProblem
from accord.sources.readers.base import SourceRejected, SourceUnavailable, scrub, secret
from accord.sources.scim_path import NoSingleValue

SCIM_JSON = "application/scim+json"


class ScimReader:
    """An HTTP client for the provider's /Users and the paged read."""

    def __init__(
        self, source: str, options: ScimOptions, client: httpx.AsyncClient, token: str
    ) -> None:
        self._source = source
        self._options = options
        self._client = client
        self._token = token
        self._fields = options.fields
        self.columns: tuple[str, ...] = ("id", *self._fields)
        self.problems: list[RowProblem] = []
        self.pages = 0
        """Pages read so far (for the run's report)."""

    def _params(self, start: int) -> dict[str, str]:
        params = {"startIndex": str(start), "count": str(self._options.page_size)}
        if self._options.filter is not None:
            params["filter"] = self._options.filter
        requested = dict.fromkeys(path.requested for path in self._fields.values())
        params["attributes"] = ",".join(["id", *requested])
        return params

    async def rows(self) -> AsyncIterator[SourceRow]:
        """The users in the provider's order, numbered from 1, one page at a time."""
        start, total = 1, None
        while True:
            resources, page_total = await self._page(start)
            self.pages += 1
            if total is not None and page_total != total:
                raise SourceUnavailable(
                    f"source {self._source!r}: the provider's users changed during the read "
                    f"(totalResults {total}, then {page_total}): run it again"
                )
            total = page_total
            for resource in resources:
                row = self._row(start, resource)
                start += 1
                if row is not None:
                    yield row
            if start > total:
                return
            if not resources:
                raise SourceUnavailable(
                    f"source {self._source!r}: the provider announced {total} users but its "
                    f"pages ended after {start - 1}: run it again"
                )

    async def _page(self, start: int) -> tuple[list[Any], int]:
        """One page's resources and the provider's `totalResults`."""
        try:
            response = await self._client.get("/Users", params=self._params(start))
        except httpx.TimeoutException:
            raise self._unavailable(f"page at {start} timed out") from None
        except httpx.TransportError as error:
            raise self._unavailable(f"page at {start}: {type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise self._refusal(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("totalResults"), int):
            raise self._rejected(
                f"GET {self._options.url}/Users -> {response.status_code}, but no SCIM "
                "ListResponse (is `url` the SCIM base URL?)"
            )
        resources = body.get("Resources", [])
        if not isinstance(resources, list):
            raise self._rejected("the ListResponse's Resources is no list")
        answered = body.get("startIndex", start)
        if resources and answered != start:
            # A provider that ignores startIndex would give its first page again and again.
            raise self._rejected(f"asked for users from {start}, got them from {answered}")
        return resources, body["totalResults"]

    def _row(self, position: int, resource: Any) -> SourceRow | None:
        if not isinstance(resource, dict):
            kind = type(resource).__name__
            self._problem(position, f"resource is no JSON object ({kind})")
            return None
        identifier = resource.get("id")
        if not isinstance(identifier, str) or not identifier:
            self._problem(position, "resource has no id")
            return None
        values = {"id": identifier}
        try:
            for field, path in self._fields.items():
                values[field] = path.value(resource)
        except NoSingleValue as error:
            self._problem(position, f"user {identifier}: {error}")
            return None
        return SourceRow(position, values)

    def _problem(self, position: int, reason: str) -> None:
        self.problems.append(RowProblem(ProblemKind.UNREADABLE, position, reason))

    def _refusal(self, response: httpx.Response) -> Exception:
        """401/403 and other 4xx: the configuration (token, URL, filter); 429 and 5xx: later."""
        status = response.status_code
        message = f"GET {self._options.url}/Users -> {status}"
        detail = _detail(response)
        if detail:
            message += f": {detail}"
        if status in (401, 403):
            message += f" (is the token in {self._options.token_env} valid, may it read Users?)"
        if status == 429 or status >= 500:
            return self._unavailable(message)
        return self._rejected(message)

    def _unavailable(self, text: str) -> SourceUnavailable:
        return SourceUnavailable(scrub(f"source {self._source!r}: {text}", self._token))

    def _rejected(self, text: str) -> SourceRejected:
        return SourceRejected(scrub(f"source {self._source!r}: {text}", self._token))


def _detail(response: httpx.Response) -> str:
    """The SCIM error's `detail` (RFC 7644 section 3.12), or its scimType, shortened."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    return str(body.get("detail") or body.get("scimType") or "")[:200]


def scim_client(
    options: ScimOptions, token: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The client the reader uses (a test may give it a transport of its own)."""
    headers = {"Accept": SCIM_JSON, "Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(
        base_url=options.url.rstrip("/"),
        headers=headers,
        timeout=options.timeout_s,
        transport=transport,
    )


@contextlib.asynccontextmanager
async def open_scim(
    source: str, options: ScimOptions, environ: Mapping[str, str]
) -> AsyncIterator[ScimReader]:
    """An HTTP client with the token from the environment; closed when the block ends.

    Nothing is requested before `rows()`: the first page is the first check of the URL and
    the token (a request only to check them would cost a round trip for nothing).
    """
    token = secret(environ, options.token_env, source, "the bearer token")
    client = scim_client(options, token)
    try:
        yield ScimReader(source, options, client, token)
    finally:
        await client.aclose()
