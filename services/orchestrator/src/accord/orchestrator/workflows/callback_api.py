"""``POST /v1/workflow-callbacks/{run_id}/{task_id}``: a custom extension's signed answer.

A ``call_extension`` task that waits gives its extension a callback URL and a token
(extensions.py). The extension POSTs its outputs there (a JSON object, as for a direct
answer), signed like every Accord call (accord.runtime.signing) with the task's secret, and
sends the token back in ``X-Accord-Callback-Token``. The caller is authenticated by that
signature and token, not by an Accord credential: an extension has none.

Answers (errors as problem+json):

- ``202``: accepted; the outputs went to the engine (:class:`CallbackSink`). A repeated
  callback for a task that already has one (an extension retrying after a lost answer, a
  replay) is answered 202 as well and not delivered again: the first callback wins.
- ``400``: signed correctly, but the body is not a flat map of outputs.
- ``401``: signature, timestamp (more than five minutes from our clock) or token missing or
  wrong. Checked before anything about the task's state is told.
- ``404``: no such run, or no such task in it that waits for a callback (nothing to check a
  signature against).
- ``409``: the task waited once but no longer does (timed out, cancelled, failed or the run
  ended): the callback came too late; the extension should not retry it.
- ``413``: the body is larger than 64 KiB.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from accord.orchestrator.workflows.extensions import (
    CALLBACK_TOKEN_HEADER,
    MAX_BODY_BYTES,
    InvalidOutputs,
    Outputs,
    decode_outputs,
)
from accord.runtime.app_deps import Mounted
from accord.runtime.params import Id
from accord.runtime.problems import documented, problem
from accord.runtime.signing import (
    DEFAULT_TOLERANCE_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    is_fresh,
    verify_signature,
)


class CallbackState(StrEnum):
    """Where a task stands with respect to its callback."""

    AWAITING = "awaiting"
    """The call was made and no callback has come yet."""
    DELIVERED = "delivered"
    """A callback came and was handed to the engine."""
    CLOSED = "closed"
    """No longer waiting without a callback: timed out, cancelled, failed, run ended."""


@dataclass(frozen=True)
class AwaitedCallback:
    """What the callback of one task of one run is checked against."""

    state: CallbackState
    secret: bytes = field(repr=False)
    token: str = field(repr=False)


class CallbackSecrets(Protocol):
    """Resolves a run's task to the secret and token its callback must carry, and its state."""

    async def lookup(self, run_id: str, task_id: str) -> AwaitedCallback | None:
        """None when the run has no such task that ever waited for a callback."""
        ...


class CallbackSink(Protocol):
    """Takes a verified callback's outputs (the workflow engine)."""

    async def deliver(self, run_id: str, task_id: str, outputs: Outputs) -> bool:
        """Hand the outputs over; False when the task already had its callback."""
        ...


@dataclass(frozen=True)
class CallbackDeps:
    """What the callback route works with, set by `configure`."""

    secrets: CallbackSecrets
    sink: CallbackSink
    clock: Callable[[], float] = time.time
    tolerance_s: float = DEFAULT_TOLERANCE_S


_deps = Mounted[CallbackDeps]("workflow_callbacks")
router = APIRouter(prefix="/v1", tags=["workflows"])


def configure(
    app: FastAPI,
    secrets: CallbackSecrets,
    sink: CallbackSink,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Mount the callback route."""
    _deps.mount(app, CallbackDeps(secrets, sink, clock), router)


class _TooLarge(Exception):
    pass


async def _body(request: Request) -> bytes:
    """The request's body, refused (_TooLarge) as soon as it passes MAX_BODY_BYTES."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _authentic(request: Request, body: bytes, awaited: AwaitedCallback, deps: CallbackDeps) -> str:
    """Why the callback is not authentic; empty when it is."""
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    signature = request.headers.get(SIGNATURE_HEADER)
    token = request.headers.get(CALLBACK_TOKEN_HEADER)
    if not timestamp or not signature:
        return f"the callback must be signed ({TIMESTAMP_HEADER}, {SIGNATURE_HEADER})"
    now = deps.clock()
    if not is_fresh(timestamp, now=now, tolerance_s=deps.tolerance_s):
        return f"{TIMESTAMP_HEADER} is not within {deps.tolerance_s:g} s of our clock"
    signed = verify_signature(
        awaited.secret, timestamp, body, signature, now=now, tolerance_s=deps.tolerance_s
    )
    token_ok = token is not None and hmac.compare_digest(
        token.encode("utf-8", "replace"), awaited.token.encode("utf-8")
    )
    if not (signed and token_ok):
        return "the signature or the callback token does not match"
    return ""


_UNAUTHORIZED = {"WWW-Authenticate": 'Signature realm="accord-workflow-callbacks"'}


@router.post(
    "/workflow-callbacks/{run_id}/{task_id}",
    status_code=202,
    summary="A custom extension's signed callback: the outputs of a waiting task",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "maxProperties": 64,
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    }
                }
            },
        }
    },
    responses={
        202: {"description": "Accepted (or already had its callback: not delivered again)"},
        400: documented("The body is not a flat object of string, number or boolean values"),
        401: documented("Signature, timestamp or callback token missing or wrong"),
        404: documented("No such run, or no task of it waits for a callback"),
        409: documented("The task no longer waits: timed out, cancelled or ended"),
        413: documented("The body is larger than 64 KiB"),
    },
)
async def receive_callback(
    run_id: Id, task_id: Id, request: Request, deps: CallbackDeps = Depends(_deps)
) -> JSONResponse:
    try:
        body = await _body(request)
    except _TooLarge:
        return problem(413, f"the callback body is larger than {MAX_BODY_BYTES} bytes")
    awaited = await deps.secrets.lookup(run_id, task_id)
    if awaited is None:
        return problem(404, "no such run, or no task of it waits for a callback")
    refused = _authentic(request, body, awaited, deps)
    if refused:
        return problem(401, refused, headers=_UNAUTHORIZED)
    if awaited.state is CallbackState.CLOSED:
        return problem(409, "the task no longer waits for a callback (timed out or ended)")
    if awaited.state is CallbackState.DELIVERED:
        return _accepted("already_delivered")
    try:
        outputs = decode_outputs(body)
    except InvalidOutputs as error:
        return problem(400, f"the callback's outputs are invalid: {error}")
    delivered = await deps.sink.deliver(run_id, task_id, outputs)
    return _accepted("accepted" if delivered else "already_delivered")


def _accepted(status: str) -> JSONResponse:
    return JSONResponse({"status": status}, status_code=202)
