"""SCIM 2.0 outbound connector (RFC 7644) over httpx."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from pydantic import SecretStr
from scim2_models import Context, ListResponse, PatchOp, PatchOperation

from accord.events import Profile
from accord.provisioner.domain.scim_mapping import ScimUser, filter_literal, to_scim_user
from accord.provisioner.ports import AccountRef, TargetRejected, TargetUnavailable

log = logging.getLogger(__name__)

SCIM_JSON = "application/scim+json"


class ScimConnector:
    """Provisions users into a SCIM service provider; looks up before it creates."""

    def __init__(
        self, name: str, base_url: str, token: SecretStr | None, *, timeout_s: float = 10.0
    ) -> None:
        self.name = name
        headers = {"Accept": SCIM_JSON, "Content-Type": SCIM_JSON}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Create the user unless the target already has it (by externalId, then userName)."""
        existing = await self.find_account(user_id, profile.user_name)
        if existing is not None:
            return AccountRef(existing, already_existed=True)
        payload = to_scim_user(user_id, profile).model_dump(
            scim_ctx=Context.RESOURCE_CREATION_REQUEST
        )
        response = await self._request("POST", "/Users", json=payload)
        if response.status_code == 409:
            # Created concurrently (or by a retry whose answer was lost): adopt it.
            existing = await self.find_account(user_id, profile.user_name)
            if existing is not None:
                return AccountRef(existing, already_existed=True)
        self._raise_for_status(response)
        created = ScimUser.model_validate(
            response.json(), scim_ctx=Context.RESOURCE_CREATION_RESPONSE
        )
        if not created.id:
            raise TargetRejected(f"{self.name}: created user has no id")
        return AccountRef(created.id, already_existed=False)

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        """PUT the mapped user over the existing one (RFC 7644 section 3.5.1), else create it."""
        account_id = await self.find_account(user_id, profile.user_name)
        if account_id is None:
            # The target lost the account (or never had it): the update repairs it.
            return await self.ensure_account(user_id, profile)
        payload = to_scim_user(user_id, profile).model_dump(
            scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST
        )
        payload["id"] = account_id
        response = await self._request("PUT", f"/Users/{account_id}", json=payload)
        if response.status_code == 404:
            # Deleted between the lookup and the PUT: create it instead.
            return await self.ensure_account(user_id, profile)
        self._raise_for_status(response)
        return AccountRef(account_id, already_existed=True)

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        """PATCH active to false (RFC 7644 section 3.5.2); idempotent."""
        return await self._set_active(user_id, user_name, active=False)

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        """PATCH active to true (RFC 7644 section 3.5.2); idempotent."""
        return await self._set_active(user_id, user_name, active=True)

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        """DELETE the user; a user already gone is success."""
        account_id = await self.find_account(user_id, user_name)
        if account_id is None:
            return None
        response = await self._request("DELETE", f"/Users/{account_id}")
        if response.status_code != 404:
            self._raise_for_status(response)
        return account_id

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        """The id of the user with this externalId or userName."""
        for attribute, value in (("externalId", user_id), ("userName", user_name)):
            params = {"filter": f"{attribute} eq {filter_literal(value)}", "count": "2"}
            response = await self._request("GET", "/Users", params=params)
            self._raise_for_status(response)
            listing = ListResponse[ScimUser].model_validate(
                response.json(), scim_ctx=Context.SEARCH_RESPONSE
            )
            for resource in listing.resources or []:
                if not resource.id:
                    continue
                if resource.external_id not in (None, user_id):
                    # Adopting it would hand one person's account to another identity.
                    raise TargetRejected(
                        f"{self.name}: userName {user_name!r} belongs to another identity"
                    )
                return resource.id
        return None

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def _set_active(self, user_id: str, user_name: str, *, active: bool) -> str | None:
        """PATCH the user's active flag; its id, or None when the target has no such user."""
        account_id = await self.find_account(user_id, user_name)
        if account_id is None:
            return None
        patch = PatchOp[ScimUser](
            operations=[PatchOperation(op=PatchOperation.Op.replace_, path="active", value=active)]
        )
        response = await self._request(
            "PATCH",
            f"/Users/{account_id}",
            json=patch.model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST),
        )
        self._raise_for_status(response)
        return account_id

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise TargetUnavailable(f"{self.name}: {method} {path} timed out") from None
        except httpx.TransportError as error:
            raise TargetUnavailable(
                f"{self.name}: {method} {path} failed: {type(error).__name__}"
            ) from None

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _scim_detail(response)
        message = f"{self.name}: {response.request.method} {response.request.url.path} -> {status}"
        if detail:
            message += f": {detail}"
        if status == 429 or status >= 500:
            raise TargetUnavailable(message, retry_after=_retry_after(response))
        raise TargetRejected(message)


def _scim_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("scimType") or "")[:200]
    return ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value and value.isdigit():
        return float(value)
    return None
