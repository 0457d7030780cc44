"""A real SMTP server to send workflow mail to: `smtp_sink_server` in a child process.

The orchestrator sends mail over SMTP (ACCORD_SMTP_*); pointed at this sink with
``ACCORD_SMTP_SECURITY=none``, every message it sends is accepted and kept as a file: a
test reads them back (`messages`), so it asserts on what really crossed the wire; `accord
up` runs one as its mail catcher, so a workflow's send_email works on a laptop and the mail
lands in a folder (`<n>.eml`, one per message) instead of anyone's inbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path

from accord.stack.errors import StartupError
from accord.stack.lifecycle import Startable

_STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class SunkMail:
    """One message the sink accepted: its envelope and the message as parsed."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain text body."""
        part = self.message.get_body(preferencelist=("plain",))
        return "" if part is None else str(part.get_content())


class SmtpSink(Startable):
    """aiosmtpd on 127.0.0.1 (a free port) accepting every message, without TLS or AUTH."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, port: int = 0) -> None:
        """Messages are written to `directory` (made if missing), one JSON file each (and
        an .eml); the server listens on `port`, 0 for a free one (`port` is then set)."""
        self.directory = directory
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    def env(self, sender: str = "accord@example.com") -> dict[str, str]:
        """The orchestrator's variables that send its mail here."""
        return {
            "ACCORD_SMTP_HOST": self.host,
            "ACCORD_SMTP_PORT": str(self.port),
            "ACCORD_SMTP_SECURITY": "none",
            "ACCORD_SMTP_FROM": sender,
        }

    async def start(self) -> None:
        """Start the server and wait until it listens (it prints `READY <port>`)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "server.log").open("w")
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "accord.stack.smtp_sink_server",
                "--dir",
                str(self.directory),
                "--port",
                str(self.port),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()  # the child holds its own descriptor
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), _STARTUP_TIMEOUT)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY "):
            await self.stop()
            tail = (self.directory / "server.log").read_text()[-2000:].strip()
            raise StartupError(f"the SMTP sink did not start: {tail}")
        self.port = int(line.split()[1])

    def messages(self) -> list[SunkMail]:
        """Every message accepted so far, in the order they came."""
        found = []
        for path in sorted(self.directory.glob("*.json"), key=lambda p: int(p.stem)):
            record = json.loads(path.read_text())
            message = message_from_string(record["data"], policy=policy.default)
            assert isinstance(message, EmailMessage)
            found.append(SunkMail(record["mail_from"], record["rcpt_tos"], message))
        return found

    async def stop(self) -> None:
        """Stop the server; idempotent."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
