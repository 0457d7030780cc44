"""The receiver's push endpoint (RFC 8935): identity providers POST their SETs here.

202 when the SET was taken; 400 with `{"err", "description"}` when it was refused; 503
when the issuer's keys cannot be fetched now (the transmitter retries).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from accord.authn.domain.set_tokens import SetRejected
from accord.authn.receiver import JwksUnavailable, React, Receiver, accept
from accord.runtime.app_deps import Mounted
from accord.runtime.problems import PROBLEM_JSON, Problem, documented
from accord.runtime.security.api import require
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

SECEVENT_JWT = "application/secevent+jwt"
#: A SET larger than this is not one an identity provider sends.
MAX_SET_BYTES = 64 * 1024


class Rfc8935Error(BaseModel):
    """Why a pushed SET was refused (RFC 8935 §2.3)."""

    model_config = ConfigDict(frozen=True)
    err: str
    description: str


_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "The SET was refused (RFC 8935 error)",
        "content": {
            "application/json": {
                "schema": Rfc8935Error.model_json_schema(),
            },
            PROBLEM_JSON: {"schema": Problem.model_json_schema()},
        },
    },
    503: documented("The issuer's keys are unavailable now; push again later"),
}
#: The body: one SET, a compact JWS (RFC 8935 §2.1).
_SET_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            SECEVENT_JWT: {
                "schema": {
                    "type": "string",
                    "maxLength": MAX_SET_BYTES,
                    "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
                }
            }
        },
    }
}


def refusal(err: str, description: str) -> JSONResponse:
    """An RFC 8935 error answer."""
    body = Rfc8935Error(err=err, description=description)
    return JSONResponse(body.model_dump(), status_code=400)


@dataclass(frozen=True)
class ReceiverDeps:
    """What the push route works with, set by `configure` on the app it is mounted on."""

    runtime: Runtime
    receiver: Receiver
    react: React


_deps = Mounted[ReceiverDeps]("authn_receiver")


def configure(app: FastAPI, runtime: Runtime, receiver: Receiver, react: React) -> None:
    """Mount POST /ssf/receiver/push."""
    _deps.mount(app, ReceiverDeps(runtime, receiver, react), router)


router = APIRouter(tags=["shared signals"])
_identity_provider = require(Permission.SSF_PUSH)


@router.post(
    "/ssf/receiver/push",
    status_code=202,
    response_class=Response,
    summary="Take a Security Event Token from an identity provider (RFC 8935)",
    responses=_REFUSED,
    openapi_extra=_SET_BODY,
)
async def push(
    request: Request,
    caller: Caller = Depends(_identity_provider),
    deps: ReceiverDeps = Depends(_deps),
) -> Response:
    # The body is the SET itself (application/secevent+jwt), not JSON: read raw, as RFC 8935
    # §2.4 wants its own error body for every refusal, a wrong Content-Type included.
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != SECEVENT_JWT:
        return refusal("invalid_request", f"the Content-Type must be {SECEVENT_JWT}")
    raw = await request.body()
    if len(raw) > MAX_SET_BYTES:
        return refusal("invalid_request", "malformed: the SET is too large")
    runtime = deps.runtime
    try:
        token = raw.decode("ascii").strip()
        checked = await deps.receiver.verify(token, caller.subject)
        async with runtime.pool.acquire() as conn, conn.transaction():
            await accept(conn, runtime.schema, checked, source=runtime.source, react=deps.react)
    except UnicodeDecodeError:
        return refusal("invalid_request", "malformed: a SET is ASCII")
    except SetRejected as refused:
        log.info(
            "SET refused",
            extra={"err": refused.err, "reason": refused.description, "caller": caller.subject},
        )
        return refusal(refused.err, refused.description)
    except JwksUnavailable as error:
        raise HTTPException(503, str(error), headers={"Retry-After": "30"}) from None
    return Response(status_code=202)
