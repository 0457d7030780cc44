"""The leaver example's custom extension, an HTTP server in the test process: it checks the
orchestrator's signature on each call and calls back signed, as a mail automation would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from accord.runtime.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signed_headers,
    verify_signature,
)
from accord.stack.network import free_port

SECRET_ENV = "ACCORD_EXTENSION_MAILBOX_SECRET"
SECRET = b"mailbox-handover-shared-secret-for-the-e2e"
CALLBACK_TOKEN_HEADER = "X-Accord-Callback-Token"


@dataclass
class ExtensionCallReceived:
    """One call the extension got, and what became of its callback."""

    identity: dict[str, Any]
    run_id: str
    task_id: str
    callback_url: str
    callback_token: str = field(repr=False)
    idempotency_key: str
    callback_status: int | None = None


class MailboxExtension:
    """The leaver's custom extension: checks each call's signature with the shared secret
    (401 if wrong), answers 200 with outputs, then calls back signed. Per identity: call
    back after a short delay (the default), only once `release`d, or never."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[ExtensionCallReceived] = []
        self.refused = 0
        self.never: set[str] = set()
        self.gates: dict[str, asyncio.Event] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mailbox-handover"

    def calls_for(self, user_id: str) -> list[ExtensionCallReceived]:
        return [c for c in self.calls if c.identity.get("user_id") == user_id]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/mailbox-handover", self._call)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _call(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed = verify_signature(
            SECRET,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
            now=time.time(),
        )
        if not signed:
            self.refused += 1
            return web.json_response({"detail": "bad signature"}, status=401)
        document = json.loads(body)
        call = ExtensionCallReceived(
            identity=document["identity"],
            run_id=document["run_id"],
            task_id=document["task_id"],
            callback_url=document["callback"]["url"],
            callback_token=document["callback"]["token"],
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        self.calls.append(call)
        user_id = str(call.identity.get("user_id"))
        if user_id not in self.never:
            task = asyncio.create_task(self._call_back(call, self.gates.get(user_id)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"ticket": f"MBX-{len(self.calls)}"})

    async def _call_back(self, call: ExtensionCallReceived, gate: asyncio.Event | None) -> None:
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0.5)
        call.callback_status = await callback(call, {"mailbox": "handed-over"})


async def callback(
    call: ExtensionCallReceived, outputs: Mapping[str, Any], secret: bytes = SECRET
) -> int:
    """POST a callback for the call, signed with `secret`; the status answered."""
    body = json.dumps(dict(outputs)).encode()
    headers = {
        "Content-Type": "application/json",
        CALLBACK_TOKEN_HEADER: call.callback_token,
        **signed_headers(secret, body, now=time.time()),
    }
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(call.callback_url, content=body, headers=headers)
    return response.status_code
