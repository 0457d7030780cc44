"""Local TCP helpers: pick a free port, wait until something listens on one."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from accord.stack.errors import StartupError


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free when this function looked."""
    # The OS picks the port; another process may still grab it before our child binds it,
    # which is acceptable for a dev box and test fixtures.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# The timeout is part of the API callers rely on, and the error names it.
async def wait_for_port(host: str, port: int, timeout: float) -> None:  # noqa: ASYNC109
    """Wait until a TCP connection to host:port succeeds, or raise StartupError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: OSError | None = None
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise StartupError(
                f"nothing accepted TCP connections on {host}:{port} within {timeout:.1f} s"
                f" (last error: {last_error!r})"
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), remaining)
        except OSError as exc:  # TimeoutError is an OSError too
            last_error = exc
            await asyncio.sleep(0.05)
            continue
        writer.close()
        # The peer may reset a probe connection it never expected; the port is up anyway.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
