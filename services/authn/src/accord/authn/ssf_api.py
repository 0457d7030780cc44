"""Shared Signals Framework 1.0 transmitter HTTP API: discovery, JWKS, stream management,
status, subjects, verification and RFC 8936 polling; `configure` mounts the receiver too.

A stream belongs to the receiver that created it (the caller's subject, with ssf:streams);
ssf:manage sees and changes every stream. Another receiver's stream answers 404, as an
unknown one does. Management errors are problem+json; poll errors
use the RFC 8936 `{"err", "description"}` body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncpg
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from accord.authn import receiver_api, ssf_openapi, transmitter
from accord.authn.adapters import ssf_store
from accord.authn.adapters.ssf_store import Stream, StreamConflict
from accord.authn.domain import set_tokens, streams
from accord.authn.domain.set_tokens import SetSigner
from accord.authn.domain.streams import InvalidStream
from accord.authn.receiver import JwksCache, React, Receiver, load_transmitters
from accord.authn.settings import AuthnSettings
from accord.runtime.app_deps import Mounted
from accord.runtime.params import Id
from accord.runtime.problems import PROBLEM_JSON, Problem
from accord.runtime.security.api import authenticated, may_see
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

_STREAM_ID = ssf_openapi.STREAM_ID
_STREAM_ID_RE = re.compile(_STREAM_ID)
StreamId = Annotated[str, Query(min_length=1, max_length=128, pattern=_STREAM_ID)]
JsonBody = Annotated[dict[str, Any], Body()]
#: Longest a poll with returnImmediately=false waits for a SET.
LONG_POLL_S = 10.0
#: How long a polled SET waits for its ack before it is handed out again.
REDELIVER_S = 30.0
_NO_STREAM = "no stream has that stream_id"


def configure(
    app: FastAPI,
    runtime: Runtime,
    settings: AuthnSettings,
    signer: SetSigner | None,
    react: React,
    receiver: Receiver,
    *,
    long_poll_s: float = LONG_POLL_S,
) -> None:
    """Mount the transmitter and the receiver endpoints."""
    check_transmitter(settings, signer)
    base = settings.public_url.rstrip("/")
    _deps.mount(app, SsfDeps(runtime, base, signer, settings, long_poll_s), _transmitter(base))
    receiver_api.configure(app, runtime, receiver, react)


class InsecureTransmitter(ValueError):
    """The transmitter would publish a plain http issuer outside development."""


def check_transmitter(settings: AuthnSettings, signer: SetSigner | None) -> None:
    """Refuse a transmitter whose issuer (the base of its jwks_uri and endpoints) is not
    https, unless ACCORD_SSF_ALLOW_HTTP says this is development (SSF 1.0 section 7.1)."""
    if signer is None or settings.ssf_allow_http:
        return
    if urlsplit(settings.public_url).scheme != "https":
        raise InsecureTransmitter(
            "ACCORD_AUTHN_PUBLIC_URL is the Shared Signals issuer and must be an https URL;"
            " set ACCORD_SSF_ALLOW_HTTP=true to allow plain http, for development only"
        )


def receiver_of(settings: AuthnSettings) -> Receiver:
    """The receiver of the settings' trusted transmitters (close its keys when stopping)."""
    return Receiver(
        load_transmitters(settings.ssf_transmitters_file, allow_http=settings.ssf_allow_http),
        JwksCache(timeout_s=settings.ssf_push_timeout_s),
        max_age_s=settings.ssf_max_age_s,
    )


def metadata(base: str) -> dict[str, Any]:
    """Transmitter configuration metadata (SSF 1.0 §7.1)."""
    return {
        "spec_version": "1_0",
        "issuer": base,
        "jwks_uri": f"{base}/ssf/jwks.json",
        "delivery_methods_supported": [streams.PUSH, streams.POLL],
        "configuration_endpoint": f"{base}/ssf/streams",
        "status_endpoint": f"{base}/ssf/status",
        "add_subject_endpoint": f"{base}/ssf/subjects:add",
        "remove_subject_endpoint": f"{base}/ssf/subjects:remove",
        "verification_endpoint": f"{base}/ssf/verify",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
        "default_subjects": "ALL",
    }


def _stream_id(body: dict[str, Any]) -> str:
    value = body.get("stream_id")
    if not isinstance(value, str) or len(value) > 128 or not _STREAM_ID_RE.fullmatch(value):
        raise HTTPException(400, "stream_id is required")
    return value


async def _owned(
    conn: asyncpg.Connection, stream_id: str, caller: Caller, *, lock: bool = False
) -> Stream:
    stream = await ssf_store.get_stream(conn, stream_id, for_update=lock)
    # Another receiver's stream is none of the caller's business: it answers as none does.
    if stream is None or not may_see(caller, Permission.SSF_MANAGE, stream.owner):
        raise HTTPException(404, _NO_STREAM)
    return stream


def _subject_key(subject: object, issuer: str) -> tuple[str, str]:
    """What a subject in an add/remove request names: ("user_id", id) or ("email", addr)."""
    fields = subject if isinstance(subject, dict) else {}
    fmt = fields.get("format")
    value = {"opaque": "id", "email": "email", "iss_sub": "sub"}.get(str(fmt))
    named = fields.get(value) if value else None
    if not isinstance(named, str) or not 0 < len(named) <= 256 or "\x00" in named:
        raise HTTPException(400, "subject must be an opaque, email or iss_sub identifier")
    if fmt == "iss_sub" and fields.get("iss") != issuer:
        raise HTTPException(400, "an iss_sub subject must name this transmitter as iss")
    return ("email", named.lower()) if fmt == "email" else ("user_id", named)


def _rfc8936_error(description: str) -> JSONResponse:
    return JSONResponse({"err": "invalid_request", "description": description}, 400)


@dataclass(frozen=True)
class SsfDeps:
    """What the transmitter's routes work with, set by `configure` on its app."""

    runtime: Runtime
    base: str
    signer: SetSigner | None
    settings: AuthnSettings
    long_poll_s: float


_deps = Mounted[SsfDeps]("authn_ssf")


def _transmitting(deps: SsfDeps = Depends(_deps)) -> SetSigner:
    if deps.signer is None:
        raise HTTPException(503, "the Shared Signals transmitter has no signing key")
    return deps.signer


_anyone = authenticated()


async def _receivers(caller: Caller = Depends(_anyone)) -> Caller:
    # ssf:streams for one's own streams; ssf:manage alone is enough to manage others'.
    if not (caller.may(Permission.SSF_STREAMS) or caller.may(Permission.SSF_MANAGE)):
        raise HTTPException(403, f"this needs the {Permission.SSF_STREAMS.value} permission")
    return caller


def _transmitter(base: str) -> APIRouter:
    """The transmitter's routes (``base`` only shapes the OpenAPI document)."""
    router = APIRouter(tags=["shared signals"], dependencies=[Depends(_transmitting)])
    route = router.add_api_route
    route(
        "/.well-known/ssf-configuration",
        configuration,
        methods=["GET"],
        summary="Transmitter configuration metadata",
    )
    route(
        "/ssf/jwks.json",
        jwks,
        methods=["GET"],
        summary="The keys Accord's SETs are signed with",
    )
    route(
        "/ssf/streams",
        create_stream,
        methods=["POST"],
        status_code=201,
        summary="Create a stream",
        responses=ssf_openapi.CONFLICT,
        openapi_extra=ssf_openapi.NEW_STREAM,
    )
    route(
        "/ssf/streams",
        read_streams,
        methods=["GET"],
        summary="One stream (stream_id), or the caller's streams",
    )
    route(
        "/ssf/streams",
        update_stream,
        methods=["PATCH"],
        summary="Update the properties given",
        responses=ssf_openapi.CONFLICT,
        openapi_extra=ssf_openapi.CHANGED_STREAM,
    )
    route(
        "/ssf/streams",
        replace_stream,
        methods=["PUT"],
        summary="Replace every receiver-supplied property",
        responses=ssf_openapi.CONFLICT,
        openapi_extra=ssf_openapi.CHANGED_STREAM,
    )
    route(
        "/ssf/streams",
        delete_stream,
        methods=["DELETE"],
        status_code=204,
        summary="Delete a stream and its SETs",
    )
    route("/ssf/status", read_status, methods=["GET"], summary="A stream's status")
    route(
        "/ssf/status",
        update_status,
        methods=["POST"],
        summary="Enable, pause or disable a stream",
        openapi_extra=ssf_openapi.STATUS_CHANGE,
    )
    route(
        "/ssf/subjects:add",
        add_subject,
        methods=["POST"],
        response_class=Response,
        summary="Add a subject to a stream (an empty 200, SSF 1.0 §8.1.3.2)",
        openapi_extra=ssf_openapi.subjects(base),
    )
    route(
        "/ssf/subjects:remove",
        remove_subject,
        methods=["POST"],
        status_code=204,
        summary="Remove a subject",
        openapi_extra=ssf_openapi.subjects(base),
    )
    route(
        "/ssf/verify",
        verify,
        methods=["POST"],
        status_code=204,
        summary="Queue a verification event (429 when asked again too soon)",
        openapi_extra=ssf_openapi.VERIFICATION,
    )
    route(
        "/ssf/poll/{stream_id}",
        poll,
        methods=["POST"],
        summary="Poll a stream's SETs (RFC 8936); without returnImmediately, a long poll",
        responses={
            400: {
                "description": "A malformed poll request (RFC 8936 error), or a push stream",
                "content": {
                    "application/json": {"schema": ssf_openapi.POLL_ERROR},
                    PROBLEM_JSON: {"schema": Problem.model_json_schema()},
                },
            }
        },
        openapi_extra=ssf_openapi.POLL_REQUEST,
    )
    return router


async def configuration(deps: SsfDeps = Depends(_deps)) -> dict[str, Any]:
    return metadata(deps.base)


async def jwks(key: SetSigner = Depends(_transmitting)) -> dict[str, Any]:
    return key.jwks()


async def create_stream(
    body: JsonBody, caller: Caller = Depends(_receivers), deps: SsfDeps = Depends(_deps)
) -> Any:
    base = deps.base
    stream_id = uuid.uuid4().hex
    try:
        config = streams.new_stream(
            body,
            stream_id=stream_id,
            issuer=base,
            audience=caller.subject,
            poll_url=f"{base}/ssf/poll/{stream_id}",
            supported=set_tokens.TRANSMITTED,
            allow_http=deps.settings.ssf_allow_http,
        )
        async with deps.runtime.pool.acquire() as conn:
            await ssf_store.insert_stream(conn, caller.subject, config)
    except InvalidStream as error:
        raise HTTPException(400, str(error)) from None
    except StreamConflict as error:
        raise HTTPException(409, str(error)) from None
    return config.public()


async def read_streams(
    stream_id: StreamId | None = None,
    caller: Caller = Depends(_receivers),
    deps: SsfDeps = Depends(_deps),
) -> Any:
    async with deps.runtime.pool.acquire() as conn:
        if stream_id is not None:
            return (await _owned(conn, stream_id, caller)).config.public()
        owner = None if caller.may(Permission.SSF_MANAGE) else caller.subject
        return [s.config.public() for s in await ssf_store.list_streams(conn, owner)]


async def _change(deps: SsfDeps, body: dict[str, Any], caller: Caller, *, replace_all: bool) -> Any:
    stream_id = _stream_id(body)
    try:
        async with deps.runtime.pool.acquire() as conn, conn.transaction():
            stream = await _owned(conn, stream_id, caller, lock=True)
            config = streams.update_stream(
                stream.config,
                body,
                replace_all=replace_all,
                poll_url=f"{deps.base}/ssf/poll/{stream_id}",
                allow_http=deps.settings.ssf_allow_http,
            )
            await ssf_store.save_config(conn, config)
            if stream.config.delivery.method == streams.POLL != config.delivery.method:
                await ssf_store.requeue_handed_out(conn, stream_id)
                await ssf_store.notify(conn, deps.runtime.schema)
    except InvalidStream as error:
        raise HTTPException(400, str(error)) from None
    except StreamConflict as error:
        raise HTTPException(409, str(error)) from None
    return config.public()


async def update_stream(
    body: JsonBody, caller: Caller = Depends(_receivers), deps: SsfDeps = Depends(_deps)
) -> Any:
    return await _change(deps, body, caller, replace_all=False)


async def replace_stream(
    body: JsonBody, caller: Caller = Depends(_receivers), deps: SsfDeps = Depends(_deps)
) -> Any:
    return await _change(deps, body, caller, replace_all=True)


async def delete_stream(
    stream_id: StreamId, caller: Caller = Depends(_receivers), deps: SsfDeps = Depends(_deps)
) -> Response:
    async with deps.runtime.pool.acquire() as conn, conn.transaction():
        await _owned(conn, stream_id, caller, lock=True)
        await ssf_store.delete_stream(conn, stream_id)
    return Response(status_code=204)


async def read_status(
    stream_id: StreamId, caller: Caller = Depends(_receivers), deps: SsfDeps = Depends(_deps)
) -> Any:
    async with deps.runtime.pool.acquire() as conn:
        return (await _owned(conn, stream_id, caller)).status_view()


async def update_status(
    body: JsonBody,
    caller: Caller = Depends(_receivers),
    key: SetSigner = Depends(_transmitting),
    deps: SsfDeps = Depends(_deps),
) -> Any:
    stream_id = _stream_id(body)
    try:
        status = streams.parse_status(body.get("status"))
        reason = streams.text(body, "reason")
    except InvalidStream as error:
        raise HTTPException(400, str(error)) from None
    schema = deps.runtime.schema
    async with deps.runtime.pool.acquire() as conn, conn.transaction():
        stream = await _owned(conn, stream_id, caller, lock=True)
        await ssf_store.set_status(conn, stream_id, status, reason)
        if caller.subject != stream.owner:
            # Changed by the transmitter's side, not the receiver: tell the receiver.
            event = {"status": status, **({"reason": reason} if reason else {})}
            await transmitter.queue_control(
                conn, schema, stream, set_tokens.STREAM_UPDATED, event, key
            )
        if status == "enabled":
            await ssf_store.notify(conn, schema)
        changed = await ssf_store.get_stream(conn, stream_id)
    assert changed is not None
    return changed.status_view()


async def _subjects(deps: SsfDeps, body: dict[str, Any], caller: Caller, *, included: bool) -> None:
    stream_id = _stream_id(body)
    kind, value = _subject_key(body.get("subject"), deps.base)
    async with deps.runtime.pool.acquire() as conn, conn.transaction():
        await _owned(conn, stream_id, caller, lock=True)
        await ssf_store.set_subject(conn, stream_id, kind, value, included=included)


async def add_subject(
    body: JsonBody, caller: Caller = Depends(_receivers), deps: SsfDeps = Depends(_deps)
) -> Response:
    await _subjects(deps, body, caller, included=True)
    return Response(status_code=200)


async def remove_subject(
    body: JsonBody, caller: Caller = Depends(_receivers), deps: SsfDeps = Depends(_deps)
) -> Response:
    await _subjects(deps, body, caller, included=False)
    return Response(status_code=204)


async def verify(
    body: JsonBody,
    caller: Caller = Depends(_receivers),
    key: SetSigner = Depends(_transmitting),
    deps: SsfDeps = Depends(_deps),
) -> Response:
    stream_id = _stream_id(body)
    try:
        state = streams.text(body, "state")
    except InvalidStream as error:
        raise HTTPException(400, str(error)) from None
    async with deps.runtime.pool.acquire() as conn, conn.transaction():
        stream = await _owned(conn, stream_id, caller, lock=True)
        interval = stream.config.min_verification_interval
        if not await ssf_store.start_verification(conn, stream_id, interval):
            raise HTTPException(
                429,
                "verification was requested too recently",
                headers={"Retry-After": str(interval)},
            )
        event = {"state": state} if state else {}
        await transmitter.queue_control(
            conn, deps.runtime.schema, stream, set_tokens.VERIFICATION, event, key
        )
    return Response(status_code=204)


async def poll(
    stream_id: Id,
    request: Request,
    caller: Caller = Depends(_receivers),
    deps: SsfDeps = Depends(_deps),
) -> Any:
    body = await request.body()
    try:
        asked = _poll_request(body)
    except ValueError as error:
        return _rfc8936_error(str(error))
    max_events, return_now, acks, errors = asked
    runtime = deps.runtime
    async with runtime.pool.acquire() as conn, conn.transaction():
        stream = await ssf_store.get_stream(conn, stream_id)
        if stream is None or caller.subject != stream.owner:  # only its receiver polls it
            raise HTTPException(404, _NO_STREAM)
        if stream.config.delivery.method != streams.POLL:
            return _rfc8936_error("this stream delivers by push")
        await ssf_store.acknowledge(conn, stream_id, acks)
        await ssf_store.record_errors(conn, stream_id, errors)
    deadline = time.monotonic() + (0 if return_now or max_events == 0 else deps.long_poll_s)
    while True:
        async with runtime.pool.acquire() as conn, conn.transaction():
            # Read again each round: the stream may be paused or enabled meanwhile.
            current = await ssf_store.get_stream(conn, stream_id) or stream
            sets, more = await ssf_store.hand_out(
                conn, current, limit=max_events, redeliver_s=REDELIVER_S
            )
        if sets or time.monotonic() >= deadline or runtime.stopping.is_set():
            return {"sets": sets, "moreAvailable": more}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), deps.settings.ssf_delivery_poll_s)


def _poll_request(raw: bytes) -> tuple[int, bool, list[str], dict[str, str]]:
    """maxEvents, returnImmediately, ack and setErrs of an RFC 8936 poll request."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError("the poll request is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the poll request must be a JSON object")
    max_events = body.get("maxEvents", ssf_store.MAX_POLL)
    if isinstance(max_events, float) and max_events.is_integer():
        max_events = int(max_events)  # JSON's 5.0 is the integer 5
    if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 0:
        raise ValueError("maxEvents must be a non-negative integer")
    return_now = body.get("returnImmediately", False)
    if not isinstance(return_now, bool):
        raise ValueError("returnImmediately must be a boolean")
    acks = body.get("ack", [])
    if not isinstance(acks, list) or not all(_storable(a) for a in acks) or len(acks) > 5000:
        raise ValueError("ack must be a list of jti strings")
    errs = body.get("setErrs", {})
    if not isinstance(errs, dict) or len(errs) > 5000:
        raise ValueError("setErrs must be an object keyed by jti")
    errors: dict[str, str] = {}
    for jti, error in errs.items():
        if not _storable(jti) or not isinstance(error, dict) or not _storable(error.get("err")):
            raise ValueError("each setErrs entry needs an err")
        description = error.get("description", "")
        if not _storable(description):
            raise ValueError("a setErrs description must be a string")
        errors[jti] = f"{error['err']}: {description}"
    return min(max_events, ssf_store.MAX_POLL), return_now, acks, errors


def _storable(value: object) -> bool:
    """A string PostgreSQL can hold as text: no NUL, no lone surrogate (JSON allows both)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
