"""A standalone in-memory SCIM 2.0 service provider (scim2-server) to provision into."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from pathlib import Path

import httpx

from accord.stack.errors import StartupError
from accord.stack.lifecycle import Startable
from accord.stack.network import free_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 30.0


def scim2_server_executable() -> Path:
    """Return the scim2-server console script of the running interpreter's environment."""
    path = Path(sys.executable).parent / "scim2-server"
    if not path.is_file():
        raise StartupError(f"scim2-server is not installed next to {sys.executable}")
    return path


class ScimTarget(Startable):
    """scim2-server on 127.0.0.1 accepting one bearer token; its data lives in memory only."""

    def __init__(
        self,
        *,
        port: int | None = None,
        bearer_token: str | None = None,
        log_dir: Path | None = None,
    ) -> None:
        """Choose the port (a free one by default), the token (a random one) and the log dir."""
        self.port = port if port is not None else free_port(_HOST)
        self._bearer_token = bearer_token if bearer_token is not None else secrets.token_urlsafe(24)
        self.log_dir = log_dir
        self._process: ManagedProcess | None = None

    @property
    def base_url(self) -> str:
        """The SCIM base URL, e.g. http://127.0.0.1:PORT (the /v2 prefix is optional)."""
        return f"http://{_HOST}:{self.port}"

    @property
    def bearer_token(self) -> str:
        """The token clients must send as "Authorization: Bearer TOKEN"."""
        return self._bearer_token

    @property
    def process(self) -> ManagedProcess | None:
        """The server process, once started."""
        return self._process

    async def start(self) -> None:
        """Start the server and wait until it serves ServiceProviderConfig to the token."""
        argv = [
            str(scim2_server_executable()),
            "--hostname",
            _HOST,
            "--port",
            str(self.port),
            # Visible in the process list; acceptable for a local demo target. One argument
            # with "=", because a random token may start with "-" and look like an option.
            f"--bearer-token={self._bearer_token}",
        ]
        log_path = None if self.log_dir is None else self.log_dir / "scim-target.log"
        # Unbuffered, so that the log tail in an error message is complete.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = ManagedProcess(
            "scim2-server", argv, env=env, log_path=log_path, stop_signal=signal.SIGINT
        )
        async with httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self._bearer_token}"},
            timeout=2.0,
        ) as client:

            async def probe() -> None:
                response = await client.get("/ServiceProviderConfig")
                response.raise_for_status()

            seconds = await start_and_wait(
                self._process, probe, timeout=_STARTUP_TIMEOUT, what="the SCIM target"
            )
        _logger.info("SCIM target ready at %s in %.2f s", self.base_url, seconds)

    async def stop(self) -> None:
        """Stop the server (all resources are lost); idempotent."""
        if self._process is not None:
            await self._process.stop()
