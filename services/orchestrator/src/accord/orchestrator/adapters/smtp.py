"""The send_email task's Mailer over SMTP: the standard library's smtplib, in a thread.

Why smtplib and not aiosmtplib: it ships with Python (no runtime dependency to keep up),
has carried STARTTLS, implicit TLS and AUTH for decades, and workflow mail is rare (a few
messages per joiner or leaver), so a thread per send costs nothing that matters. Each
socket operation is bounded by the settings' timeout, which bounds the thread too.

No overall asyncio timeout is put around the thread on purpose: giving up while the
thread goes on could report a failure for a message the server then accepts, and the
retry would send it twice. A cancelled caller leaves the thread to finish the same way;
the message's fixed Message-ID makes such a repeat recognisable.

SMTP answers map onto the port's two errors by their code: 5xx is MailRejected
(permanent), 4xx MailUnavailable (transient); a refused connection, a dropped one, a
timeout or a TLS failure is MailUnavailable; a server that lacks what the settings ask for
(STARTTLS, AUTH) is MailRejected: retrying cannot fix configuration.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from accord.orchestrator.workflows.mail import (
    Mail,
    MailError,
    MailRejected,
    MailUnavailable,
    build_message,
    check_address,
)

log = logging.getLogger(__name__)

#: The port each security mode listens on unless ACCORD_SMTP_PORT says otherwise.
DEFAULT_PORTS: Mapping[str, int] = {"starttls": 587, "tls": 465, "none": 25}


def _variable(field: str) -> str:
    return f"ACCORD_SMTP_{field.upper()}"


class SmtpSettings(BaseModel):
    """Where and how mail is sent; each field is read from ACCORD_SMTP_<FIELD>.

    `SmtpSettings.model_validate(os.environ)` reads the environment; code and tests give
    fields by name. The password is a SecretStr: its repr, str and every log line show
    `**********`, and only the login reads its value.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=_variable),
    )

    host: str = Field(default="localhost", min_length=1, description="The SMTP server.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Its port; by default 587 (starttls), 465 (tls) or 25 (none).",
    )
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls: plain connection upgraded with STARTTLS, refused if the"
        " server does not offer it (never a silent fall-back to clear text); tls: TLS from"
        " the first byte (SMTPS); none: clear text, for a relay on the same host or network.",
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CAs that sign the server's certificate (a private CA);"
        " by default the system's.",
    )
    username: str | None = Field(default=None, description="AUTH user; none: no AUTH.")
    password: SecretStr | None = Field(default=None, description="AUTH password.")
    allow_insecure_auth: bool = Field(
        default=False,
        description="Allow AUTH over security=none (the password crosses in clear text);"
        " for a relay on the same host only.",
    )
    sender: str = Field(
        default="accord@localhost",
        validation_alias="ACCORD_SMTP_FROM",
        description="The From address and envelope sender of every workflow mail.",
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Seconds each connect, read or write may take before the send fails"
        " as unavailable.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_address(self.sender)
        if (self.username is None) != (self.password is None):
            raise ValueError("ACCORD_SMTP_USERNAME and ACCORD_SMTP_PASSWORD go together")
        if self.username is not None and self.security == "none" and not self.allow_insecure_auth:
            raise ValueError(
                "AUTH over ACCORD_SMTP_SECURITY=none sends the password in clear text;"
                " use starttls or tls, or set ACCORD_SMTP_ALLOW_INSECURE_AUTH=true"
            )
        return self

    @property
    def effective_port(self) -> int:
        """The port connected to: the one set, else the security mode's usual one."""
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]


def _code_error(code: int, what: str, reply: bytes | str) -> MailError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"{what}: {code} {text}".strip()
    return MailRejected(message) if 500 <= code < 600 else MailUnavailable(message)


def classify(error: BaseException) -> MailError:
    """The port's error for what smtplib or the socket raised (see the module docstring).

    Recipients refused all at once: permanent if any refusal is 5xx (a retry would fail
    for that address again), else transient.
    """
    if isinstance(error, MailError):
        return error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = error.recipients
        codes = [code for code, _reply in refused.values()]
        worst = max(codes, default=451)
        detail = "; ".join(
            f"{a}: {c} {r.decode('utf-8', 'replace')}" for a, (c, r) in refused.items()
        )
        return _code_error(worst, "recipients refused", detail)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return MailRejected(f"the server does not support what the settings ask: {error}")
    if isinstance(error, smtplib.SMTPResponseException):  # sender, data, auth, helo, connect
        return _code_error(error.smtp_code, type(error).__name__, error.smtp_error)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return MailUnavailable(f"the server closed the connection: {error}")
    if isinstance(error, smtplib.SMTPException):  # e.g. no AUTH mechanism in common
        return MailRejected(f"SMTP: {error}")
    if isinstance(error, OSError):  # refused, unreachable, timeout, TLS handshake
        return MailUnavailable(f"cannot reach the SMTP server: {type(error).__name__}: {error}")
    raise TypeError(f"not an SMTP or socket error: {error!r}") from error


class SmtpMailer:
    """The Mailer on an SMTP server: one connection per message, closed after it."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, message: Mail) -> None:
        """Send `message` (see `Mailer.send`); smtplib runs in a worker thread."""
        email = build_message(message, self._settings.sender, date=datetime.now(UTC))
        try:
            refused = await asyncio.to_thread(self._deliver, email, message.to)
        except (smtplib.SMTPException, OSError) as e:
            error = classify(e)
            log.warning(
                "mail not sent",
                extra={"message_id": message.message_id, "reason": str(error)},
            )
            raise error from e
        if refused:
            # Some recipients accepted it: it is sent; the refused ones are reported so the
            # task fails rather than pretending everyone got it. Sending again would reach
            # the accepting recipients twice, so even a 4xx refusal here is final.
            error = classify(smtplib.SMTPRecipientsRefused(refused))
            raise MailRejected(f"delivered to some recipients only; {error}")
        log.info(
            "mail sent",
            extra={"message_id": message.message_id, "recipients": len(message.to)},
        )

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self._settings.ca_file
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(
                s.host, s.effective_port, timeout=s.timeout_s, context=self._tls_context()
            )
        client = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout_s)
        try:
            if s.security == "starttls":
                client.ehlo()
                client.starttls(context=self._tls_context())  # SMTPNotSupportedError if absent
                client.ehlo()
        except BaseException:
            client.close()
            raise
        return client

    def _deliver(
        self, email: EmailMessage, recipients: Sequence[str]
    ) -> dict[str, tuple[int, bytes]]:
        """One SMTP session (blocking): connect, secure, log in, send; the refused ones."""
        s = self._settings
        client = self._connect()
        try:
            if s.username is not None and s.password is not None:
                client.login(s.username, s.password.get_secret_value())
            return client.send_message(email, from_addr=s.sender, to_addrs=list(recipients))
        finally:
            # Not `with client`: its QUIT raises on an odd answer, which would turn a
            # message already accepted into a failure (and a duplicate on retry).
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
