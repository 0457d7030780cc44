"""The revoke_entitlement task's way to authz: its grants API and its decision API.

authz owns the grants: a workflow asks it to end one (``POST /v1/grants/{id}/revoke``) and
authz announces the ``access.revoked`` that takes the memberships away, so its record and
the targets stay one. The identity's live grants come from ``GET /v1/entitlements``
(paged), and ``unless_allowed`` asks ``POST /v1/authorize`` whether the identity as it is
now may ``request`` the entitlement: only ``permit`` keeps it (``approval_required`` is not
an allowance).

The orchestrator calls with an Accord API token holding ``access:read``, ``access:revoke``
and ``authorize``, read from a file at each call (a rotated token works without a restart).
Configured by ``ACCORD_AUTHZ_URL`` and ``ACCORD_AUTHZ_TOKEN_FILE``.

Failures are the effects' EffectFailed: 429, 5xx, timeouts and connection failures are
transient (Retry-After kept), any other unexpected answer permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from accord.orchestrator.adapters.service_api import ServiceApi, UnreadableToken
from accord.orchestrator.workflows.effects import EffectFailed, HeldGrant
from accord.runtime.retry_after import retry_after_seconds

#: Grants read per page.
PAGE = 500


class HttpAccessGrants(ServiceApi):
    """AccessGrants over authz's HTTP API."""

    service = "authz"

    async def held(self, user_id: str) -> Sequence[HeldGrant]:
        found: list[HeldGrant] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"principal_id": user_id, "limit": PAGE}
            if after is not None:
                params["after"] = after
            page = await self._call("GET", "/v1/entitlements", params=params)
            for item in page.get("items", []):
                if item.get("revoked_at") is None:
                    found.append(
                        HeldGrant(item["grant_id"], item["application"], item["entitlement"])
                    )
            after = page.get("next_after")
            if after is None:
                return found

    async def allowed(self, user_id: str, application: str, entitlement: str) -> bool:
        question = {
            "principal": {"type": "User", "id": user_id},
            "action": "request",
            "resource": {"type": "Entitlement", "id": f"{application}/{entitlement}"},
        }
        answer = await self._call("POST", "/v1/authorize", json=question)
        return answer.get("decision") == "permit"

    async def revoke(self, grant_id: str, reason: str) -> None:
        path = f"/v1/grants/{quote(grant_id, safe='')}/revoke"
        await self._call("POST", path, json={"reason": reason}, ended_ok=True)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        ended_ok: bool = False,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            response = await self._client.request(
                method, self._base + path, params=params, json=json, headers=headers
            )
        except httpx.TimeoutException:
            raise EffectFailed("authz did not answer in time", retryable=True) from None
        except httpx.TransportError as error:
            raise EffectFailed(
                f"cannot reach authz: {type(error).__name__}", retryable=True
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                document = response.json()
            except ValueError:
                raise EffectFailed("authz's answer is not JSON", retryable=False) from None
            return document if isinstance(document, dict) else {}
        if status == 409 and ended_ok:
            return {}  # the grant ended already: what was asked holds
        if status == 429 or status >= 500:
            header = response.headers.get("Retry-After", "")
            raise EffectFailed(
                f"authz answered {status}",
                retryable=True,
                retry_after_s=retry_after_seconds(header, self._clock()),
            )
        raise EffectFailed(
            f"authz refused {method} {path.split('?')[0]}: {status}", retryable=False
        )

    def _token(self) -> str:
        try:
            return self._read_token()
        except UnreadableToken as error:
            raise EffectFailed(str(error), retryable=False) from None
