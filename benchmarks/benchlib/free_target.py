"""A near-free SCIM 2.0 target: Users (and Groups) in memory over a raw asyncio HTTP/1.1 server.

The `max-free` phase points the provisioner at it to show the engine's own ceiling: what a
joiner costs Accord when the target costs next to nothing (scim2-server parses and validates
every resource with pydantic and takes a good share of the machine). It answers exactly what
the provisioner's SCIM connector asks (services/provisioner/.../adapters/scim.py): a joiner
is GET /Users?filter=externalId eq "x" then POST /Users; its health check is GET
/ServiceProviderConfig and GET /Users?count=0; PUT, PATCH (active, members) and DELETE are
there for the other flows. Filters: `attr eq "v"` and `attr sw "v"` on a top-level string
attribute (anything else finds nothing). No authentication: the bearer token is ignored.

Standard library only, so that it runs as its own process (its CPU is a label of its own):
python free_target.py --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
CONFIG = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    "patch": {"supported": True},
    "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
    "filter": {"supported": True, "maxResults": 1000},
    "changePassword": {"supported": False},
    "sort": {"supported": False},
    "etag": {"supported": False},
    "authenticationSchemes": [],
}
FILTER = re.compile(r'^\s*(\w+)\s+(eq|sw)\s+("(?:[^"\\]|\\.)*")\s*$', re.IGNORECASE)
REASONS = {200: "OK", 201: "Created", 204: "No Content", 404: "Not Found", 409: "Conflict"}
UNIQUE = {"Users": "userName", "Groups": "displayName"}


INDEXED = ("userName", "externalId", "displayName")
"""Attributes an `eq` filter finds by index: a joiner's lookups cost O(1), not a scan."""


class Store:
    """Resources by type and id; userName (Users) and displayName (Groups) unique."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, dict[str, Any]]] = {"Users": {}, "Groups": {}}
        self.index: dict[tuple[str, str, str], set[str]] = {}
        """(type, attribute, value) -> ids, for the INDEXED attributes."""

    def put(self, kind: str, resource: dict[str, Any]) -> None:
        """Store (or replace) a resource and index it."""
        self.drop(kind, resource["id"])
        self.resources[kind][resource["id"]] = resource
        for key in _keys(kind, resource):
            self.index.setdefault(key, set()).add(resource["id"])

    def drop(self, kind: str, resource_id: str) -> None:
        """Forget a resource and its index entries (nothing if there is none)."""
        old = self.resources[kind].pop(resource_id, None)
        for key in _keys(kind, old or {}):
            self.index.get(key, set()).discard(resource_id)

    def create(self, kind: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = UNIQUE[kind]
        if self.index.get((kind, key, str(body.get(key)))):
            return 409, _error(409, f"{key} taken", "uniqueness")
        resource = {**body, "id": uuid.uuid4().hex}
        resource["meta"] = {"resourceType": kind[:-1], "location": f"/{kind}/{resource['id']}"}
        self.put(kind, resource)
        return 201, resource

    def search(self, kind: str, query: dict[str, list[str]]) -> dict[str, Any]:
        expression = query.get("filter", [None])[0]
        match = FILTER.match(expression) if expression else None
        if match and match[2].lower() == "eq" and match[1] in INDEXED:
            ids = self.index.get((kind, match[1], json.loads(match[3])), set())
            found = [self.resources[kind][i] for i in sorted(ids)]
        else:
            found = list(self.resources[kind].values())
            if expression is not None:
                found = [r for r in found if _matches(r, expression)]
        start = max(1, int(query.get("startIndex", ["1"])[0]))
        count = int(query.get("count", ["1000"])[0])
        page = found[start - 1 : start - 1 + count]
        return {
            "schemas": [LIST],
            "totalResults": len(found),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": page,
        }

    def patch(self, kind: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        found = self.resources[kind].get(resource_id)
        if found is None:
            return None
        resource = dict(found)
        for operation in body.get("Operations", []):
            op, path, value = (
                operation.get("op", "").lower(),
                operation.get("path"),
                operation.get("value"),
            )
            if path is None and isinstance(value, dict):
                resource.update(value)
            elif path == "members" and op == "add":
                resource.setdefault("members", []).extend(value or [])
            elif path and path.startswith("members[") and op == "remove":
                gone = path.split('"')[1] if '"' in path else ""
                resource["members"] = [
                    m for m in resource.get("members", []) if m.get("value") != gone
                ]
            elif path and op == "remove":
                resource.pop(path, None)
            elif path:
                resource[path] = value
        self.put(kind, resource)
        return resource


def _keys(kind: str, resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(kind, a, resource[a]) for a in INDEXED if isinstance(resource.get(a), str)]


def _matches(resource: dict[str, Any], expression: str) -> bool:
    match = FILTER.match(expression)
    if match is None:
        return False
    attribute, operator, literal = match.groups()
    value = resource.get(attribute)
    wanted = json.loads(literal)
    if not isinstance(value, str):
        return False
    return value == wanted if operator.lower() == "eq" else value.startswith(wanted)


def _error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def answer(
    store: Store, method: str, target: str, body: bytes
) -> tuple[int, dict[str, Any] | None]:
    """The status and JSON body for one request (the whole SCIM part, no I/O)."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if parts and parts[0] == "v2":
        parts = parts[1:]
    if parts == ["ServiceProviderConfig"]:
        return 200, CONFIG
    if not parts or parts[0] not in store.resources:
        return 404, _error(404, f"no {url.path}")
    kind = parts[0]
    payload = json.loads(body) if body else {}
    if len(parts) == 1:
        if method == "GET":
            return 200, store.search(kind, parse_qs(url.query))
        if method == "POST":
            return store.create(kind, payload)
        return 404, _error(404, f"{method} {url.path}")
    resource_id = parts[1]
    existing = store.resources[kind].get(resource_id)
    if existing is None:
        return 404, _error(404, f"no {kind[:-1]} {resource_id}")
    if method == "GET":
        return 200, existing
    if method == "PUT":
        replaced = {**payload, "id": resource_id, "meta": existing["meta"]}
        store.put(kind, replaced)
        return 200, replaced
    if method == "PATCH":
        return 200, store.patch(kind, resource_id, payload)
    if method == "DELETE":
        store.drop(kind, resource_id)
        return 204, None
    return 404, _error(404, f"{method} {url.path}")


async def serve_connection(
    store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """HTTP/1.1 with keep-alive, Content-Length bodies only (what httpx sends)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, value in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            status, reply = answer(store, method, target, body)
            data = b"" if reply is None else json.dumps(reply).encode()
            head_out = (
                f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: application/scim+json\r\nContent-Length: {len(data)}\r\n\r\n"
            )
            writer.write(head_out.encode() + data)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    store = Store()
    server = await asyncio.start_server(
        lambda r, w: serve_connection(store, r, w), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A near-free in-memory SCIM 2.0 target.")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
