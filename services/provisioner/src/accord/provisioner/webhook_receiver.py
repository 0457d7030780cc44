"""A reference receiver of the webhook protocol, keeping accounts in memory.

It checks every request's signature, timestamp and idempotency key as a real receiver
must, and answers with the semantics the module docstring of
`accord.provisioner.adapters.webhook` gives: accounts in a dict by account id, groups as
sets of account ids. The contract tests and the connector benchmark run against it; a
team writing its own receiver can read it as a worked example. Faults can be injected per
user name (`""`: the calls about the whole target).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.provisioner.adapters.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    idempotency_key,
    verify_signature,
)

PATH = "/hooks/accord"


@dataclass
class Record:
    """One account as the receiver keeps it."""

    user_name: str
    user_id: str | None
    active: bool = True
    profile: dict[str, Any] = field(default_factory=dict)
    """The other profile attributes, as the last create or update sent them."""

    @property
    def title(self) -> str | None:
        title: str | None = self.profile.get("title")
        return title

    def described(self, account_id: str) -> dict[str, Any]:
        """The account as get and list answer it."""
        profile = {**self.profile, "user_name": self.user_name}
        return {
            "account_id": account_id,
            "owner": self.user_id,
            "active": self.active,
            "profile": profile,
        }


@dataclass(frozen=True)
class Fault:
    """An answer the receiver gives instead of acting, for one user name ("": list calls)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: bytes = b'{"detail": "injected"}'


class _Conflict(Exception):
    pass


class Receiver:
    """A webhook receiver that keeps the protocol, its accounts in a dict by account id."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.accounts: dict[str, Record] = {}
        self.groups: dict[str, set[str]] = {}
        self.faults: dict[str, Fault] = {}
        self.refused = 0
        self.keys: list[str] = []
        self.app = Starlette(routes=[Route(PATH, self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify_signature(self.secret, timestamp, body, signature, now=time.time()):
            self.refused += 1
            return JSONResponse({"detail": "bad signature or stale timestamp"}, status_code=401)
        if request.headers.get("content-type") != "application/json":
            return JSONResponse({"detail": "not JSON"}, status_code=415)
        call = json.loads(body)
        operation = call["operation"]
        user_id, user_name = call.get("user_id", ""), call.get("user_name", "")
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key != idempotency_key(operation, user_id, body):
            return JSONResponse({"detail": "bad idempotency key"}, status_code=400)
        self.keys.append(key)
        fault = self.faults.get(user_name)
        if fault is not None:
            await asyncio.sleep(fault.delay_s)
            return Response(fault.body, fault.status, fault.headers, "application/json")
        if "user_id" not in call:
            return self.survey(operation, call)
        try:
            return self.act(operation, user_id, user_name, call)
        except _Conflict:
            return JSONResponse(
                {"detail": f"{user_name!r} belongs to another identity"}, status_code=409
            )

    def survey(self, operation: str, call: dict[str, Any]) -> Response:
        """The calls about the whole target: list, list_members, health."""
        if operation == "health":
            return Response(status_code=204)
        if operation == "list_members":
            return JSONResponse({"members": sorted(self.groups.get(call["group"], set()))})
        if operation != "list":
            return JSONResponse({"detail": f"unknown operation {operation!r}"}, status_code=400)
        cursor = call["cursor"]
        after = sorted(a for a in self.accounts if cursor is None or a > cursor)
        page = after[: call["limit"]]
        return JSONResponse(
            {
                "accounts": [self.accounts[a].described(a) for a in page],
                "next_cursor": page[-1] if len(after) > len(page) else None,
            }
        )

    def act(self, operation: str, user_id: str, user_name: str, call: dict[str, Any]) -> Response:
        # No await in here: one request's lookup and change are atomic in the event loop.
        if operation == "get":
            seen = self.lookup(user_id, user_name, claim=False)
            if seen is None:
                return JSONResponse({"detail": "no such account"}, status_code=404)
            return JSONResponse(seen[1].described(seen[0]))
        found = self.lookup(user_id, user_name)
        if operation in ("create", "update"):
            profile = call["profile"]
            if found is None:
                account_id = uuid.uuid4().hex
                self.accounts[account_id] = self.record(user_id, profile)
                return JSONResponse({"account_id": account_id, "created": True})
            account_id, record = found
            if operation == "update" or record.user_id is None:
                # An update, or the adoption of an unlinked account: linked, given the profile.
                self.accounts[account_id] = self.record(user_id, profile)
            return JSONResponse({"account_id": account_id, "created": False})
        if found is None:
            return JSONResponse({"detail": "no such account"}, status_code=404)
        account_id, record = found
        if operation in ("disable", "enable"):
            record.active = operation == "enable"
        elif operation == "delete":
            del self.accounts[account_id]
            for members in self.groups.values():
                members.discard(account_id)
        elif operation == "add_member":
            self.groups.setdefault(call["group"], set()).add(account_id)
        elif operation == "remove_member":
            self.groups.get(call["group"], set()).discard(account_id)
        elif operation != "find":
            return JSONResponse({"detail": f"unknown operation {operation!r}"}, status_code=400)
        return JSONResponse({"account_id": account_id})

    def lookup(
        self, user_id: str, user_name: str, *, claim: bool = True
    ) -> tuple[str, Record] | None:
        """The account linked to user_id, else the one named user_name.

        Claiming it (every operation but get): unless it is another identity's.
        """
        for account_id, record in self.accounts.items():
            if record.user_id == user_id:
                return account_id, record
        for account_id, record in self.accounts.items():
            if record.user_name == user_name:
                if claim and record.user_id not in (None, user_id):
                    raise _Conflict
                return account_id, record
        return None

    @staticmethod
    def record(user_id: str, profile: dict[str, Any]) -> Record:
        rest = {k: v for k, v in profile.items() if k not in ("user_name", "active")}
        return Record(profile["user_name"], user_id, profile["active"], rest)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The caller owns the signals; serve() stops the server itself.
        yield


@dataclass(frozen=True)
class Running:
    """A receiver being served, and the URL a webhook target points at."""

    receiver: Receiver
    url: str


@contextlib.asynccontextmanager
async def serve(secret: bytes, host: str = "127.0.0.1") -> AsyncIterator[Running]:
    """Serve a new receiver on a port the OS picks, in this event loop, until the block ends."""
    receiver = Receiver(secret)
    config = uvicorn.Config(
        receiver.app,
        host=host,
        port=0,
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
                raise RuntimeError("the webhook receiver stopped before it started")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(receiver, f"http://{host}:{port}{PATH}")
    finally:
        server.should_exit = True
        await serving
