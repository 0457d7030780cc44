"""A real SMTP server that keeps what it is sent: aiosmtpd in a child process (the
SmtpMailer's integration tests, `accord.stack.smtp_sink.SmtpSink` for the end-to-end tests,
and `accord up`'s mail catcher).

    python -m accord.stack.smtp_sink_server --dir DIR [--port N] [--refuse ADDRESS=CODE ...]
        [--auth USER]

Listens on 127.0.0.1 on port N (default: a free port) and prints `READY <port>` once it
accepts connections. Each message it accepts is written to DIR as `<n>.json`: the envelope
(MAIL FROM, RCPT TO) and the raw message as received, for tests to read back; and as
`<n>.eml`, the message alone, for a person to open in a mail client; one line on stderr
says who sent what to whom. Numbering goes on after the highest `<n>.json` already in DIR,
so a restart keeps earlier mail. `--refuse` answers RCPT TO for that
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
import sys
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

REPLIES = {550: "550 5.1.1 no such user here", 451: "451 4.3.0 try again later"}


class Sink:
    """Writes each message to a file; refuses the recipients it was told to."""

    def __init__(self, directory: Path, refuse: dict[str, int]) -> None:
        self.directory = directory
        self.refuse = refuse
        # Go on after the mail a previous run kept here (accord up's home survives restarts).
        self.count = max(
            (int(p.stem) for p in directory.glob("*.json") if p.stem.isdigit()), default=0
        )

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
        eml = self.directory / f"{self.count}.eml"
        eml.write_bytes(content)
        path = self.directory / f"{self.count}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.rename(path)  # the test never reads half a message
        subject = message_from_bytes(content).get("Subject", "")
        to = ", ".join(envelope.rcpt_tos)
        print(
            f"{eml.name}: from {envelope.mail_from} to {to}: {subject}", file=sys.stderr, flush=True
        )
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
    parser.add_argument("--port", type=int, default=0)
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
    try:
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.test", **auth), "127.0.0.1", args.port
        )
    except OSError as error:  # the port is taken: one line for whoever started us
        print(f"cannot listen on 127.0.0.1:{args.port}: {error.strerror}", file=sys.stderr)
        raise SystemExit(1) from None
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
