"""Mail for the workflows' send_email task: the message, its templates and the port.

The task (welcome mail to the manager, farewell, the temporary access pass) renders a
subject and bodies from templates written in the workflow's YAML, builds a `Mail` and
hands it to a `Mailer`. Everything here is pure: no socket is opened; the SMTP adapter
(`accord.orchestrator.adapters.smtp`) is the only I/O edge, and `FakeMailer` stands in for
it in the unit tests of the engine and the tasks.

Why so strict:
- Templates are written by teams and rendered with identity attributes (a display name, a
  manager's address), so a template may only name placeholders, never evaluate anything:
  `{user.__class__}` or `{0[secret]}` would reach into Python objects under `str.format`.
- Header values come partly from identity attributes, so a CR or LF in a subject or an
  address (`Subject: hi\\r\\nBcc: everyone@...`) is refused when the `Mail` is built, before
  any transport could be fooled by it.
- A send can be retried after a crash between the server's "250 OK" and the run recording
  it; each run/task pair therefore always carries the same Message-ID, so the repeat is
  recognisable (mail clients and many servers collapse duplicates by Message-ID).
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

# --- errors --------------------------------------------------------------------------


class MailError(Exception):
    """A message was not sent; the subclass says whether sending it again can succeed."""


class MailRejected(MailError):
    """Permanent: the server refused the message, a recipient or our credentials (5xx), or
    the transport is misconfigured; the same message sent again fails the same way."""


class MailUnavailable(MailError):
    """Transient: no connection, a timeout, or a 4xx answer; a later retry may succeed."""


class InvalidMail(ValueError):
    """A message that must not be built: a header injection, a malformed address or id."""


class TemplateError(ValueError):
    """A template that names anything but plain placeholders, or one left without a value."""


# --- addresses and headers -----------------------------------------------------------

#: A bare addr-spec (local@domain) in printable ASCII, without the characters that would
#: let a value turn into several addresses or a display name (`,;<>"()` and spaces).
#: Deliberately narrower than RFC 5322: no quoted local parts, no SMTPUTF8, which no
#: workflow needs and which each widen what a header can carry.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

#: One part of a Message-ID (a run or task id): no dot, so `<run.task@accord>` splits one
#: way only, and nothing that would need quoting in a header.
_ID_PART = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: What a message id may look like: `<left@right>` in dot-atom text.
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9_.-]{1,300}@[A-Za-z0-9.-]{1,255}>")

#: Characters never allowed in a header value: line breaks end the header (injection);
#: the others are line breaks to some parsers or invisible controls.
_HEADER_BREAKERS = frozenset("\r\n\x00\x0b\x0c\x7f\x85\u2028\u2029")


def check_address(address: str) -> str:
    """`address` if it is one bare addr-spec (`local@domain`), else InvalidMail."""
    if _HEADER_BREAKERS.intersection(address):
        raise InvalidMail("an address holds a line break or control character")
    if not _ADDRESS.fullmatch(address) or len(address) > 254:
        raise InvalidMail(f"not a bare e-mail address (local@domain): {address!r}")
    return address


def check_header_text(name: str, value: str) -> str:
    """`value` if it can stand as one header line's text, else InvalidMail (injection)."""
    if _HEADER_BREAKERS.intersection(value) or any(ord(c) < 0x20 for c in value if c != "\t"):
        raise InvalidMail(f"the {name} holds a line break or control character")
    return value


def message_id(run_id: str, task_id: str) -> str:
    """The Message-ID of a run's task, `<run-id.task-id@accord>`: the same on every retry."""
    for label, part in (("run id", run_id), ("task id", task_id)):
        if not _ID_PART.fullmatch(part):
            raise InvalidMail(f"a {label} in a Message-ID must match {_ID_PART.pattern}: {part!r}")
    return f"<{run_id}.{task_id}@accord>"


# --- the message ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Mail:
    """One message to send; validated when built, so no transport sees a bad header.

    `to` is stored as a tuple (immutable, hashable) whatever sequence is given; each
    recipient gets the message (the envelope and the To header are the same list).
    """

    to: Sequence[str]
    subject: str
    text: str
    message_id: str
    html: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.to, str):  # a lone string would become one address per letter
            raise InvalidMail("to is a list of addresses, not one string")
        to = tuple(check_address(a) for a in self.to)
        if not to:
            raise InvalidMail("a mail needs at least one recipient")
        if len(set(a.lower() for a in to)) != len(to):
            raise InvalidMail("a recipient is listed twice")
        object.__setattr__(self, "to", to)
        check_header_text("subject", self.subject)
        if len(self.subject) > 998:
            raise InvalidMail("the subject is longer than a header line may be (998)")
        if not _MESSAGE_ID.fullmatch(self.message_id):
            raise InvalidMail(f"not a Message-ID (<left@right>): {self.message_id!r}")


def build_message(mail: Mail, sender: str, *, date: datetime) -> EmailMessage:
    """The RFC 5322 message of `mail` from `sender`: text, or text and HTML alternatives.

    Auto-Submitted: auto-generated (RFC 3834) keeps vacation responders from answering a
    machine; the date is given, so the result depends on its arguments only.
    """
    check_address(sender)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message["Message-ID"] = mail.message_id
    message["Date"] = format_datetime(date)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


# --- templates -----------------------------------------------------------------------

_FORMATTER = string.Formatter()


def placeholders(template: str) -> set[str]:
    """The placeholder names of `template`, or TemplateError if it holds anything else.

    Only `{name}` (a Python identifier) is a placeholder; `{{` and `}}` are literal braces.
    Refused: positional fields (`{}`, `{0}`), attribute and index access (`{a.b}`,
    `{a[0]}`), conversions (`{a!r}`) and format specs (`{a:>10}`, which may nest fields):
    each would let a template reach into or reshape the values instead of naming them.
    A workflow is checked at load: `check_template` with the variables the task offers.
    """
    found: set[str] = set()
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as e:  # an unmatched brace
        raise TemplateError(f"malformed template: {e}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(f"only {{name}} placeholders are allowed, not {{{name}}}")
        if conversion is not None or spec:
            raise TemplateError(f"placeholder {{{name}}} may not have a conversion or format")
        found.add(name)
    return found


def check_template(template: str, known: Collection[str]) -> set[str]:
    """The placeholders of `template`; TemplateError naming those `known` does not hold."""
    names = placeholders(template)
    unknown = names.difference(known)
    if unknown:
        raise TemplateError(f"unknown placeholders: {', '.join(sorted(unknown))}")
    return names


def render(
    template: str,
    values: Mapping[str, str],
    *,
    escape: Callable[[str], str] | None = None,
) -> str:
    """`template` with each `{name}` replaced by `values[name]` (passed through `escape`).

    Built piece by piece from the parsed template, never with `str.format`: a value is
    inserted as text and never parsed again, so a value holding `{other}` stays as it is.
    A placeholder without a value is a TemplateError (not an empty string): a welcome mail
    saying "Dear ," is a bug to report, not to send.
    """
    names = placeholders(template)
    missing = names.difference(values)
    if missing:
        raise TemplateError(f"no value for: {', '.join(sorted(missing))}")
    out: list[str] = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            value = values[name]
            out.append(escape(value) if escape else value)
    return "".join(out)


def render_html(template: str, values: Mapping[str, str]) -> str:
    """`render` for an HTML body: each value HTML-escaped (a name cannot inject markup)."""
    return render(template, values, escape=html.escape)


# --- the port and its fake -----------------------------------------------------------


class Mailer(Protocol):
    """Sends one message; the send_email task's only way out."""

    async def send(self, message: Mail) -> None:
        """Hand `message` to the mail system; returns once it was accepted for delivery.

        Raises MailRejected (permanent: fail the task) or MailUnavailable (transient: the
        task's retry policy applies). A send retried after a crash may deliver twice;
        the message's fixed Message-ID makes the repeat recognisable.
        """
        ...


@dataclass
class FakeMailer:
    """An in-memory Mailer for unit tests: records what was sent, fails on demand.

    `failures` are raised by the next sends, one each, in order; a failed send records
    nothing (as a refused SMTP transaction delivers nothing).
    """

    failures: list[MailError] = field(default_factory=list)
    sent: list[Mail] = field(default_factory=list)

    def fail_next(self, *errors: MailError) -> None:
        """Make the next sends raise `errors`, one each."""
        self.failures.extend(errors)

    async def send(self, message: Mail) -> None:
        """Record `message`, or raise the next scripted failure."""
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)

    def to(self, address: str) -> list[Mail]:
        """The messages sent to `address`, in order."""
        return [m for m in self.sent if address.lower() in (a.lower() for a in m.to)]

    def message_ids(self) -> list[str]:
        """The Message-IDs sent, in order (a repeat shows a retried send)."""
        return [m.message_id for m in self.sent]
