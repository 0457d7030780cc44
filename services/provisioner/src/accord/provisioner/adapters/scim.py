"""SCIM 2.0 outbound connector (RFC 7644) over httpx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr
from scim2_models import (
    Context,
    Group,
    GroupMember,
    ListResponse,
    PatchOp,
    PatchOperation,
    Resource,
    ScimObject,
)

from accord.events import Profile
from accord.provisioner.adapters.http_pool import async_transport, env_proxy_mounts
from accord.provisioner.domain import scim_mapping
from accord.provisioner.domain.scim_mapping import (
    MANAGED_FIELDS,
    ScimUser,
    filter_literal,
    to_profile,
    to_scim_user,
)
from accord.provisioner.ports import AccountRef, TargetAccount, TargetRejected, TargetUnavailable

log = logging.getLogger(__name__)

SCIM_JSON = "application/scim+json"

R = TypeVar("R", bound=Resource[Any])
M = TypeVar("M", bound=ScimObject)


class ScimConnector:
    """Provisions users into a SCIM service provider; looks up its own link before it creates."""

    managed_fields = MANAGED_FIELDS

    def __init__(
        self, name: str, base_url: str, token: SecretStr | None, *, timeout_s: float = 10.0
    ) -> None:
        self.name = name
        headers = {"Accept": SCIM_JSON, "Content-Type": SCIM_JSON}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_s,
            transport=async_transport(),
            mounts=env_proxy_mounts(),
        )

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Create the user unless the target already has it.

        The account Accord made carries the identity as externalId, so one lookup by it finds
        a redelivered command's account. Otherwise POST: a userName held already is a 409
        (RFC 7643 makes userName unique, RFC 7644 section 3.3 the answer), and then the holder
        is adopted unless it belongs to another identity. A new joiner costs two requests,
        not three (looking up the userName first as well). Adopting an account made outside
        Accord replaces it with the mapped user, externalId included: it is linked, and has
        the identity's attributes.
        """
        mine = await self._user_where("externalId", user_id)
        if mine is not None and mine.id:
            return AccountRef(mine.id, already_existed=True)
        payload = to_scim_user(user_id, profile).model_dump(
            scim_ctx=Context.RESOURCE_CREATION_REQUEST
        )
        response = await self._request("POST", "/Users", json=payload)
        if self._is_uniqueness_conflict(response):
            # Held by an account made outside Accord, or created concurrently (or by a retry
            # whose answer was lost): adopt it.
            existing = await self._lookup(user_id, profile.user_name)
            if existing is not None and existing.id:
                if existing.external_id not in (None, user_id):
                    raise TargetRejected(
                        f"{self.name}: userName {profile.user_name!r} belongs to another identity"
                    )
                # SCIM has no write conditional on the user being unlinked still that every
                # provider honours; two identities of one userName adopting at once is a
                # conflict of the source data.
                if existing.external_id == user_id or await self._replace(
                    existing.id, user_id, profile
                ):
                    return AccountRef(existing.id, already_existed=True)
                raise TargetUnavailable(f"{self.name}: the user to adopt went meanwhile")
        self._raise_for_status(response)
        return AccountRef(self._created_id(response, ScimUser), already_existed=False)

    @staticmethod
    def _is_uniqueness_conflict(response: httpx.Response) -> bool:
        """409, or the 400 with scimType "uniqueness" some providers answer instead."""
        if response.status_code == 409:
            return True
        return response.status_code == 400 and _scim_error(response).get("scimType") == "uniqueness"

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        """PUT the mapped user over the existing one (RFC 7644 section 3.5.1), else create it."""
        account_id = await self.find_account(user_id, profile.user_name)
        if account_id is None:
            # The target lost the account (or never had it): the update repairs it.
            return await self.ensure_account(user_id, profile)
        if not await self._replace(account_id, user_id, profile):
            # Deleted between the lookup and the PUT: create it instead.
            return await self.ensure_account(user_id, profile)
        return AccountRef(account_id, already_existed=True)

    async def _replace(self, account_id: str, user_id: str, profile: Profile) -> bool:
        """PUT the mapped user over the user of that id; False when there is none (404)."""
        payload = to_scim_user(user_id, profile).model_dump(
            scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST
        )
        payload["id"] = account_id
        response = await self._request("PUT", f"/Users/{account_id}", json=payload)
        if response.status_code == 404:
            return False
        self._raise_for_status(response)
        return True

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        """PATCH active to false (RFC 7644 section 3.5.2); idempotent."""
        return await self._set_active(user_id, user_name, active=False)

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        """PATCH active to true (RFC 7644 section 3.5.2); idempotent."""
        return await self._set_active(user_id, user_name, active=True)

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        """Take the user out of its groups, then DELETE it; a user already gone is success.

        Not every provider drops a deleted user from the groups that list it (scim2-server
        does not), and a group would list the dead id for good; one that cannot filter groups
        by member (400 or 501) is trusted to.
        """
        account_id = await self.find_account(user_id, user_name)
        if account_id is None:
            return None
        member = f"members[value eq {filter_literal(account_id)}]"
        response = await self._request("GET", "/Groups", params={"filter": member})
        if response.status_code not in (400, 501):
            self._raise_for_status(response)
            listing = self._parse(response, ListResponse[Group], Context.SEARCH_RESPONSE)
            await self._take_out(account_id, [g for g in listing.resources or [] if g.id])
        response = await self._request("DELETE", f"/Users/{account_id}")
        if response.status_code != 404:
            self._raise_for_status(response)
        return account_id

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        """The id of the user with this externalId or userName."""
        user = await self._lookup(user_id, user_name)
        if user is None:
            return None
        if user.external_id not in (None, user_id):
            # Adopting it would hand one person's account to another identity.
            raise TargetRejected(f"{self.name}: userName {user_name!r} belongs to another identity")
        return user.id

    def as_stored(self, profile: Profile) -> Profile:
        """The profile as the target reads it back (displayName derived, e-mail normalised)."""
        return scim_mapping.as_stored(profile)

    async def get_account(self, user_id: str, user_name: str) -> TargetAccount | None:
        """The user with this externalId, else this userName, whoever owns it."""
        user = await self._lookup(user_id, user_name)
        return None if user is None else self._account(user)

    async def list_accounts(self, *, page_size: int = 200) -> AsyncIterator[TargetAccount]:
        """Every user, paged by startIndex and count (RFC 7644 section 3.4.2.4)."""
        start = 1
        seen: set[str] = set()
        while True:
            listing = await self._search(
                "/Users", ListResponse[ScimUser], startIndex=str(start), count=str(page_size)
            )
            users = listing.resources or []
            for user in users:
                # Index paging of a live target can show a user twice when others come and go.
                if user.id and user.id not in seen:
                    seen.add(user.id)
                    yield self._account(user)
            start += len(users)
            if not users or start > (listing.total_results or 0):
                return

    async def add_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """PATCH the user into the group's members, creating the group if there is none."""
        account_id = await self.find_account(user_id, user_name)
        if account_id is None:
            return None
        group_id = await self._group_id(group)
        add = PatchOperation[Group](
            op=PatchOperation.Op.add, path="members", value=[GroupMember(value=account_id)]
        )
        await self._patch(f"/Groups/{group_id}", PatchOp[Group](operations=[add]))
        return account_id

    async def remove_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """PATCH the user out of every group of that name; a missing group is success."""
        account_id = await self.find_account(user_id, user_name)
        if account_id is None:
            return None
        await self._take_out(account_id, await self._groups(group))
        return account_id

    async def _take_out(self, account_id: str, groups: list[Group]) -> None:
        """PATCH the user out of the groups; a group gone meanwhile is success."""
        remove = PatchOperation[Group](
            op=PatchOperation.Op.remove, path=f"members[value eq {filter_literal(account_id)}]"
        )
        for found in groups:
            await self._patch(
                f"/Groups/{found.id}", PatchOp[Group](operations=[remove]), gone_ok=True
            )

    async def list_members(self, group: str) -> list[str]:
        """The ids of the users in the group(s) of that name, read from the Group resources."""
        members: set[str] = set()
        for found in await self._groups(group):
            response = await self._request("GET", f"/Groups/{found.id}")
            if response.status_code == 404:
                continue  # deleted since the search
            self._raise_for_status(response)
            resource = self._parse(response, Group, Context.RESOURCE_QUERY_RESPONSE)
            members.update(m.value for m in resource.members or [] if m.value and m.type != "Group")
        return sorted(members)

    async def health(self) -> None:
        """GET the ServiceProviderConfig, then an empty page of users.

        The second call checks the token: providers may serve the configuration to anyone
        (scim2-server does).
        """
        for path, params in (("/ServiceProviderConfig", {}), ("/Users", {"count": "0"})):
            self._raise_for_status(await self._request("GET", path, params=params))

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def _lookup(self, user_id: str, user_name: str) -> ScimUser | None:
        """The user with this externalId, else the one with this userName (anyone's)."""
        for attribute, value in (("externalId", user_id), ("userName", user_name)):
            user = await self._user_where(attribute, value)
            if user is not None:
                return user
        return None

    async def _user_where(self, attribute: str, value: str) -> ScimUser | None:
        """The first user (with an id) whose attribute equals value."""
        listing = await self._search(
            "/Users",
            ListResponse[ScimUser],
            filter=f"{attribute} eq {filter_literal(value)}",
            count="2",
        )
        return next((user for user in listing.resources or [] if user.id), None)

    def _account(self, user: ScimUser) -> TargetAccount:
        """A user read back as the port's account."""
        if not user.id:
            raise TargetRejected(f"{self.name}: a listed user has no id")
        try:
            profile = to_profile(user)
        except ValueError as error:
            raise TargetRejected(f"{self.name}: user {user.id}: {error}") from None
        return TargetAccount(user.id, user.external_id, profile.active, profile)

    async def _groups(self, group: str) -> list[Group]:
        """The groups of that displayName; a target may let a name repeat (scim2-server does)."""
        listing = await self._search(
            "/Groups", ListResponse[Group], filter=f"displayName eq {filter_literal(group)}"
        )
        return [found for found in listing.resources or [] if found.id]

    async def _group_id(self, group: str) -> str:
        """The id of the group of that name, created if the target has none."""
        groups = await self._groups(group)
        if not groups:
            payload = Group(display_name=group).model_dump(
                scim_ctx=Context.RESOURCE_CREATION_REQUEST
            )
            response = await self._request("POST", "/Groups", json=payload)
            if response.status_code != 409:
                self._raise_for_status(response)
                return self._created_id(response, Group)
            # Created concurrently: use that one.
            groups = await self._groups(group)
            if not groups:
                raise TargetRejected(f"{self.name}: group {group!r} conflicts but is not found")
        # Several of that name: always the same one, so that members gather in it.
        return min(str(found.id) for found in groups)

    async def _search(
        self, path: str, listing: type[ListResponse[R]], **params: str
    ) -> ListResponse[R]:
        """GET a listing (RFC 7644 section 3.4.2) with these query parameters."""
        response = await self._request("GET", path, params=params)
        self._raise_for_status(response)
        return self._parse(response, listing, Context.SEARCH_RESPONSE)

    def _created_id(self, response: httpx.Response, model: type[Resource[Any]]) -> str:
        """The id of the resource a successful POST answered with."""
        created = self._parse(response, model, Context.RESOURCE_CREATION_RESPONSE)
        if not created.id:
            raise TargetRejected(f"{self.name}: created {model.__name__} has no id")
        return created.id

    async def _patch(self, path: str, patch: PatchOp[Any], *, gone_ok: bool = False) -> None:
        """PATCH a resource (RFC 7644 section 3.5.2); a 404 is success when `gone_ok`."""
        response = await self._request(
            "PATCH", path, json=patch.model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        )
        if not (gone_ok and response.status_code == 404):
            self._raise_for_status(response)

    async def _set_active(self, user_id: str, user_name: str, *, active: bool) -> str | None:
        """PATCH the user's active flag; its id, or None when the target has no such user."""
        account_id = await self.find_account(user_id, user_name)
        if account_id is None:
            return None
        patch = PatchOp[ScimUser](
            operations=[PatchOperation(op=PatchOperation.Op.replace_, path="active", value=active)]
        )
        await self._patch(f"/Users/{account_id}", patch)
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

    def _parse(self, response: httpx.Response, model: type[M], context: Context) -> M:
        """The answer's body as a scim2-models object; an unreadable one is a rejection."""
        try:
            return model.model_validate(response.json(), scim_ctx=context)
        except ValueError as error:  # not JSON, or not the expected resource
            raise TargetRejected(
                f"{self.name}: {response.request.method} {response.request.url.path}"
                f" answered an unreadable {model.__name__}: {type(error).__name__}"
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


def _scim_error(response: httpx.Response) -> dict[str, Any]:
    """The SCIM error body (RFC 7644 section 3.12), or {} when there is none to read."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _scim_detail(response: httpx.Response) -> str:
    body = _scim_error(response)
    return str(body.get("detail") or body.get("scimType") or "")[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value and value.isdigit():
        return float(value)
    return None
