"""SmtpMailer against a real SMTP server process (aiosmtpd, see accord.stack.smtp_sink_server):
delivery with its headers and envelope, a refused recipient, a stopped server, AUTH."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

import pytest
from pydantic import SecretStr

from accord.orchestrator.adapters.smtp import SmtpMailer, SmtpSettings
from accord.orchestrator.workflows.mail import (
    Mail,
    MailRejected,
    MailUnavailable,
    message_id,
    render,
    render_html,
)

pytestmark = pytest.mark.integration

#: Run with -m: as a script, its folder would shadow the standard library (platform.py).
SINK = "accord.stack.smtp_sink_server"
PASSWORD = "s3cret-Pa55word-never-logged"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    login: str | None
    message: EmailMessage


@dataclass
class SmtpSink:
    """One aiosmtpd process and the directory it writes the messages it accepts to."""

    process: subprocess.Popen[str]
    port: int
    directory: Path
    log: IO[str]

    def received(self) -> list[Received]:
        found = []
        for path in sorted(self.directory.glob("*.json"), key=lambda p: int(p.stem)):
            record = json.loads(path.read_text())
            message = message_from_string(record.pop("data"), policy=policy.default)
            assert isinstance(message, EmailMessage)
            found.append(Received(message=message, **record))
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[Callable[..., SmtpSink]]:
    """Start SMTP server processes: refuse={address: code}, auth=user (password PASSWORD)."""
    started: list[SmtpSink] = []

    def start(refuse: dict[str, int] | None = None, auth: str | None = None) -> SmtpSink:
        directory = tmp_path / f"sink-{len(started)}"
        directory.mkdir()
        command = [sys.executable, "-m", SINK, "--dir", str(directory)]
        for address, code in (refuse or {}).items():
            command += ["--refuse", f"{address}={code}"]
        env = dict(os.environ)
        if auth:
            command += ["--auth", auth]
            env["SMTP_SINK_PASSWORD"] = PASSWORD
        log = (directory / "server.log").open("w")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until READY (or the process died)
        if not line.startswith("READY "):
            process.kill()
            process.wait()
            process.stdout.close()
            log.close()
            raise RuntimeError(f"SMTP sink did not start: {(directory / 'server.log').read_text()}")
        sink = SmtpSink(process, int(line.split()[1]), directory, log)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


def mailer(port: int, **overrides: Any) -> SmtpMailer:
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "accord@example.com",
        "timeout_s": 5,
    }
    fields.update(overrides)
    return SmtpMailer(SmtpSettings(**fields))


def welcome(*to: str) -> Mail:
    values = {"manager": "Grace", "name": "Ada <Lovelace>", "day": "2026-03-02"}
    return Mail(
        to=list(to),
        subject=render("Welcome {name}", values),
        text=render("Dear {manager},\n{name} starts on {day}.\n", values),
        html=render_html("<p>Dear {manager}, <b>{name}</b> starts on {day}.</p>", values),
        message_id=message_id("run-7f3a", "welcome_mail"),
    )


async def test_a_mail_arrives_with_its_subject_bodies_recipients_and_message_id(
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink()
    await mailer(sink.port).send(welcome("grace@example.com", "hr@example.com"))

    [got] = sink.received()
    assert got.mail_from == "accord@example.com"
    assert got.rcpt_tos == ["grace@example.com", "hr@example.com"]
    assert got.message["From"] == "accord@example.com"
    assert got.message["To"] == "grace@example.com, hr@example.com"
    assert got.message["Subject"] == "Welcome Ada <Lovelace>"
    assert got.message["Message-ID"] == "<run-7f3a.welcome_mail@accord>"
    assert got.message["Auto-Submitted"] == "auto-generated"
    assert got.message["Date"] is not None
    text = got.message.get_body(("plain",))
    html = got.message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert (
        text.get_content().replace("\r\n", "\n")
        == "Dear Grace,\nAda <Lovelace> starts on 2026-03-02.\n"
    )
    assert "<b>Ada &lt;Lovelace&gt;</b>" in html.get_content()


async def test_a_retried_send_carries_the_same_message_id(
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink()
    smtp = mailer(sink.port)
    await smtp.send(welcome("grace@example.com"))
    await smtp.send(welcome("grace@example.com"))

    ids = [r.message["Message-ID"] for r in sink.received()]
    assert ids == ["<run-7f3a.welcome_mail@accord>"] * 2


async def test_a_recipient_the_server_refuses_with_550_is_rejected(
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink(refuse={"nobody@example.com": 550})
    with pytest.raises(MailRejected, match=r"nobody@example\.com: 550"):
        await mailer(sink.port).send(welcome("nobody@example.com"))
    assert sink.received() == []


async def test_a_recipient_refused_with_451_is_unavailable(
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink(refuse={"later@example.com": 451})
    with pytest.raises(MailUnavailable, match="451"):
        await mailer(sink.port).send(welcome("later@example.com"))
    assert sink.received() == []


async def test_a_partly_refused_mail_is_delivered_to_the_others_and_reported(
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink(refuse={"later@example.com": 451})
    with pytest.raises(MailRejected, match=r"some recipients only.*later@example\.com"):
        await mailer(sink.port).send(welcome("grace@example.com", "later@example.com"))
    [got] = sink.received()
    assert got.rcpt_tos == ["grace@example.com"]


async def test_a_stopped_server_is_unavailable(smtp_sink: Callable[..., SmtpSink]) -> None:
    sink = smtp_sink()
    sink.stop()
    with pytest.raises(MailUnavailable, match="cannot reach"):
        await mailer(sink.port).send(welcome("grace@example.com"))


async def test_starttls_is_required_when_asked_for_never_skipped(
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink()  # offers no STARTTLS
    with pytest.raises(MailRejected, match="STARTTLS"):
        await mailer(sink.port, security="starttls").send(welcome("grace@example.com"))
    assert sink.received() == []


async def test_auth_with_a_password_logs_in_and_never_logs_the_password(
    smtp_sink: Callable[..., SmtpSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = smtp_sink(auth="accord")
    secured = {
        "username": "accord",
        "password": SecretStr(PASSWORD),
        "allow_insecure_auth": True,
    }
    caplog.set_level(logging.DEBUG)

    await mailer(sink.port, **secured).send(welcome("grace@example.com"))
    [got] = sink.received()
    assert got.login == "accord"

    wrong = {**secured, "password": SecretStr("wrong-" + PASSWORD)}
    with pytest.raises(MailRejected, match="535") as refused:
        await mailer(sink.port, **wrong).send(welcome("grace@example.com"))
    with pytest.raises(MailRejected, match="530"):  # the server requires AUTH
        await mailer(sink.port).send(welcome("grace@example.com"))
    assert len(sink.received()) == 1

    assert any(r.message == "mail sent" for r in caplog.records)
    assert any(r.message == "mail not sent" for r in caplog.records)
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert PASSWORD not in logged
    assert PASSWORD not in str(refused.value)
