"""The inbound SCIM 2.0 service provider (RFC 7643 / RFC 7644) under /scim/v2.

scim2-server speaks the protocol (filters, sorting, paging, attributes, PATCH, ETags, error
bodies); Accord supplies the storage (PostgreSQL, with the registry kept in step) and the
authentication: a bearer token per SCIM client (`accord token create okta --role
scim-client`), or an OIDC token with that role.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, HTTPException
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    ETag,
    Filter,
    ForbiddenException,
    Group,
    Patch,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    UnauthorizedException,
    User,
)
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope, Send
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from starlette.requests import Request
from starlette.types import ASGIApp

from accord.orchestrator.adapters.scim_storage import PostgresScimStorage
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.scim.errors import quiet, schema_words
from accord.orchestrator.scim.models import EnterpriseUser, LifecycleUser, with_manager_reference
from accord.orchestrator.scim.sync import RegistrySync
from accord.orchestrator.workflows.engine import Engine
from accord.runtime.problems import serve_scim_errors
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

MOUNT = "/scim"
#: The User the service serves: RFC 7643's, with the enterprise and lifecycle extensions.
SCIM_USER = User[EnterpriseUser | LifecycleUser]
MAX_RESULTS = 1000
#: Discovery documents anyone may read (RFC 7644 section 4 lets them go unauthenticated).
_PUBLIC = ("/v2/ServiceProviderConfig",)


def provider() -> ScimProvider:
    """What the service announces: Users (with the enterprise extension and Accord's
    lifecycle extension, both optional) and Groups."""
    config = ServiceProviderConfig(
        documentation_uri="https://github.com/accord-iam/accord#inbound-scim",
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="An Accord API token with the scim-client role, or an OIDC token",
                primary=True,
            )
        ],
    )
    return ScimProvider(
        models=[User, EnterpriseUser, LifecycleUser, Group],
        resource_types=[
            ResourceType.from_resource(SCIM_USER),
            ResourceType.from_resource(Group),
        ],
        config=config,
    )


class AccordScimService(ScimService):
    """scim2-server's protocol, with Accord's choices where RFC 7644 leaves one."""

    def publish(self, base_url: str, resource: Resource[Any]) -> Resource[Any]:
        """As sent to the client, the manager's `$ref` filled in when the client sent none."""
        return super().publish(base_url, with_manager_reference(resource.model_copy(deep=True)))

    def patch_response(
        self,
        base_url: str,
        resource: Resource[Any],
        response_parameters: ResponseParameters[Any],
    ) -> ScimResponse:
        """200 with the resource, as Okta expects (RFC 7644 section 3.5.2 allows 204 too)."""
        return self.resource_response(
            self.publish(base_url, resource),
            Context.RESOURCE_REPLACEMENT_RESPONSE,
            response_parameters,
        )


class ScimApplication(ASGIApplication):
    """scim2-server's ASGI application behind Accord's authentication."""

    def __init__(
        self, storage: PostgresScimStorage, provider: ScimProvider, service: ScimService
    ) -> None:
        super().__init__(storage, provider, service)
        self._known = schema_words([SCIM_USER, EnterpriseUser, LifecycleUser, Group])

    def handle_exception(self, request: ScimRequest, exception: Exception) -> ScimResponse:
        """scim2-server's error response, its detail never quoting the request."""
        response = super().handle_exception(request, exception)
        if isinstance(response.body, dict):
            response.body = quiet(
                response.body,
                path=request.path,
                query=dict(request.query),
                payload=request.body,
                known=self._known,
            )
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a SCIM request from a caller holding scim:provision."""
        if scope["type"] == "http" and self.get_path(scope) not in _PUBLIC:
            refusal = await self._refusal(Request(scope))
            if refusal is not None:
                await self.send_response(refusal, send)
                return
        await super().__call__(scope, receive, send)

    async def _refusal(self, request: Request) -> ScimResponse | None:
        security: ApiSecurity | None = getattr(request.app.state, "security", None)
        if security is None:
            return ScimResponse(HTTPStatus.SERVICE_UNAVAILABLE, _error(503, "starting"))
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            caller: Caller = await security.authenticate(
                request, token.strip() if scheme.lower() == "bearer" else None
            )
        except HTTPException as error:
            if error.status_code == 401:
                return self.service.error_response(UnauthorizedException(detail=error.detail))
            headers = {k: v for k, v in (error.headers or {}).items()}
            return ScimResponse(
                HTTPStatus(error.status_code), _error(error.status_code, error.detail), headers
            )
        if not caller.may(Permission.SCIM_PROVISION):
            detail = f"this needs the {Permission.SCIM_PROVISION.value} permission"
            return self.service.error_response(ForbiddenException(detail=detail))
        return None


def _error(status: int, detail: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(status),
        "detail": str(detail),
    }


def mount(
    app: FastAPI, runtime: Runtime, workflows: WorkflowSettings, engine: Engine | None = None
) -> None:
    """Serve SCIM under /scim/v2, on the orchestrator's database and outbox (and the
    workflow engine's, when it is on)."""
    sync = RegistrySync(workflows, runtime.schema, f"{runtime.source}/scim", engine)
    described = provider()
    storage = PostgresScimStorage(described, runtime.pool.acquire, on_change=sync)
    # scim2-server types the ASGI scope as a dict, Starlette as a MutableMapping: same thing.
    application = ScimApplication(storage, described, AccordScimService(described))
    app.mount(MOUNT, cast(ASGIApp, application))
    # What the shared middleware refuses under /scim (a NUL, a body too large) is a SCIM error.
    serve_scim_errors(app, MOUNT)
