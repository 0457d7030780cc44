"""What the orchestrator's clients of another Accord service's HTTP API share: the base URL,
one connection pool (no redirects followed), and an API token read from a file at each
call, so a rotated token works without a restart and none sits in memory for long."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx


class UnreadableToken(Exception):
    """The token file cannot be read or is empty (the reason names the file, never a token)."""


class ServiceApi:
    """A client of one Accord service (`service` names it in messages)."""

    service = "the service"

    def __init__(
        self,
        base_url: str,
        token_file: Path,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token_file = token_file
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "accord-orchestrator"},
        )

    def _read_token(self) -> str:
        """The token in the file; UnreadableToken when there is none."""
        try:
            token = self._token_file.read_text().strip()
        except OSError as error:
            raise UnreadableToken(
                f"cannot read the {self.service} token file: {error.strerror}"
            ) from None
        if not token:
            raise UnreadableToken(f"the {self.service} token file is empty")
        return token

    async def close(self) -> None:
        await self._client.aclose()
