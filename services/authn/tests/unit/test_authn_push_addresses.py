"""A push endpoint whose name resolves to a link-local or metadata address is never called."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from accord.authn.adapters.ssf_store import PushJob
from accord.authn.delivery import Outcome, push_one


def job(url: str) -> PushJob:
    return PushJob("jti-1", "stream-1", "a.b.c", 1, url, "Bearer secret")


def resolving_to(address: str) -> Any:
    async def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, 1, 6, "", (address, port))]

    return getaddrinfo


async def push_resolving_to(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Outcome, list[httpx.Request]]:
    """One push to a receiver whose name resolves to `address`; what it came to and sent."""
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolving_to(address))
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        outcome = await push_one(client, job("https://receiver.example.org/ssf"), timeout_s=1)
    return outcome, sent


@pytest.mark.parametrize("address", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1%eth0"])
async def test_a_name_resolving_to_a_forbidden_address_is_not_pushed_to(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, sent = await push_resolving_to(address, monkeypatch)

    assert outcome.kind == "retry"
    assert "link-local or metadata" in outcome.detail
    assert sent == []


async def test_a_name_resolving_to_an_ordinary_address_is_pushed_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome, sent = await push_resolving_to("203.0.113.7", monkeypatch)

    assert outcome.kind == "delivered"
    assert [r.headers["authorization"] for r in sent] == ["Bearer secret"]
