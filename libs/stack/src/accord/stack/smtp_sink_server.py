"""A real SMTP server for tests: aiosmtpd in a child process (the SmtpMailer's integration
tests, and `accord.stack.smtp_sink.SmtpSink` for the end-to-end tests).

    python -m accord.stack.smtp_sink_server --dir DIR [--refuse ADDRESS=CODE ...] [--auth USER]

aiosmtpd is a development dependency: this module is only ever run by tests.

Listens on 127.0.0.1 on a free port and prints `READY <port>` once it accepts
connections. Each message it accepts is written to DIR as `<n>.json`: the envelope
(MAIL FROM, RCPT TO) and the raw message as received. `--refuse` answers RCPT TO for that
address with CODE (550: permanent, 451: transient). `--auth USER` requires AUTH (PLAIN or
LOGIN, over clear text as a local relay might) with that user and the password in the
environment variable SMTP_SINK_PASSWORD, kept off the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

REPLIES = {550: "550 5.1.1 no such user here", 451: "451 4.3.0 try again later"}


class Sink:
    """Writes each message to a file; refuses the recipients it was told to."""

    def __init__(self, directory: Path, refuse: dict[str, int]) -> None:
        self.directory = directory
        self.refuse = refuse
        self.count = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        code = self.refuse.get(address.lower())
        if code is not None:
            return REPLIES.get(code, f"{code} refused")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        login = session.auth_data
        content = envelope.original_content or b""
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login.login.decode() if isinstance(login, LoginPassword) else None,
            "data": content.decode("utf-8", "replace"),
        }
        path = self.directory / f"{self.count}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.rename(path)  # the test never reads half a message
        return "250 Message accepted for delivery"


def authenticator(user: str, password: str) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--refuse", action="append", default=[])
    parser.add_argument("--auth")
    args = parser.parse_args()
    refuse = {a.lower(): int(c) for a, c in (item.rsplit("=", 1) for item in args.refuse)}
    handler = Sink(args.dir, refuse)
    auth: dict[str, Any] = {}
    if args.auth:
        password = os.environ["SMTP_SINK_PASSWORD"]
        auth = {
            "authenticator": authenticator(args.auth, password),
            "auth_required": True,
            "auth_require_tls": False,
        }

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test", **auth), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
