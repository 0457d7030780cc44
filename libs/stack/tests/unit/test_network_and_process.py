"""Fast checks of the port helpers and of ManagedProcess bookkeeping."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from accord.stack.errors import StartupError
from accord.stack.network import free_port, wait_for_port
from accord.stack.process import ManagedProcess


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def test_wait_for_port_succeeds_on_a_listening_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        await wait_for_port("127.0.0.1", sock.getsockname()[1], timeout=2)


async def test_wait_for_port_names_the_port_on_timeout() -> None:
    port = free_port()
    with pytest.raises(StartupError, match=f"127.0.0.1:{port}"):
        await wait_for_port("127.0.0.1", port, timeout=0.2)


async def test_tail_shows_only_the_current_run(tmp_path: Path) -> None:
    log_path = tmp_path / "echo.log"
    log_path.write_text("old run\n")
    process = ManagedProcess(
        "echo", [sys.executable, "-c", "print('\\n'.join(map(str, range(30))))"], log_path=log_path
    )
    assert process.pid is None
    assert process.returncode is None
    assert not process.running
    await process.start()
    assert await process.wait() == 0
    assert process.tail(3) == "27\n28\n29"
    assert "old run" not in process.tail(100)
    assert "old run" in log_path.read_text()


async def test_without_a_log_the_tail_is_empty() -> None:
    process = ManagedProcess("true", [sys.executable, "-c", "print('lost')"])
    await process.start()
    await process.wait()
    assert process.tail() == ""
    assert process.returncode == 0
