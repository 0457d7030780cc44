"""The send_email task's mail: templates, header injection, the message, the fake mailer,
the SMTP settings and how SMTP errors map onto the port's two errors."""

from __future__ import annotations

import smtplib
import socket
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from pydantic import SecretStr, ValidationError

from accord.orchestrator.adapters.smtp import SmtpSettings, classify
from accord.orchestrator.workflows.mail import (
    FakeMailer,
    InvalidMail,
    Mail,
    MailRejected,
    MailUnavailable,
    TemplateError,
    build_message,
    check_template,
    message_id,
    placeholders,
    render,
    render_html,
)

MID = message_id("run-1", "welcome")


def mail(**overrides: object) -> Mail:
    fields: dict[str, object] = {
        "to": ["manager@example.com"],
        "subject": "Welcome Ada",
        "text": "Ada starts on Monday.",
        "message_id": MID,
    }
    fields.update(overrides)
    return Mail(**fields)  # type: ignore[arg-type]


# --- templates -----------------------------------------------------------------------


def test_placeholders_are_the_named_fields_and_double_braces_are_literal() -> None:
    assert placeholders("Dear {manager}, {name} starts on {hire_date} {{not one}}") == {
        "manager",
        "name",
        "hire_date",
    }
    assert placeholders("no fields") == set()


@pytest.mark.parametrize(
    "template",
    [
        "{}",  # positional
        "{0}",
        "{user.__class__}",  # attribute access
        "{user[password]}",  # index access
        "{name!r}",  # conversion
        "{name:>40}",  # format spec
        "{name:{width}}",  # nested field in a spec
        "unbalanced {name",
        "unbalanced }",
    ],
)
def test_anything_but_a_plain_placeholder_is_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        placeholders(template)
    with pytest.raises(TemplateError):
        render(template, {"name": "Ada", "user": "x", "width": "3", "0": "x"})


def test_check_template_names_the_unknown_placeholders_at_load() -> None:
    assert check_template("Hi {name}", {"name", "manager"}) == {"name"}
    with pytest.raises(TemplateError, match="unknown placeholders: hire_dat, nme"):
        check_template("Hi {nme}, from {hire_dat}", {"name", "hire_date"})


def test_render_substitutes_values_once_without_parsing_them_again() -> None:
    out = render(
        "Dear {manager}, {name} ({{id}}) starts {day}.",
        {"manager": "Grace", "name": "{secret} {day.__class__}", "day": "Monday"},
    )
    assert out == "Dear Grace, {secret} {day.__class__} ({id}) starts Monday."


def test_render_refuses_a_placeholder_without_a_value_and_ignores_extra_values() -> None:
    with pytest.raises(TemplateError, match="no value for: name"):
        render("Dear {name}", {"manager": "Grace"})
    assert render("Hi", {"unused": "x"}) == "Hi"


def test_render_html_escapes_values_but_not_the_template() -> None:
    out = render_html("<p>Welcome <b>{name}</b></p>", {"name": '<script>x("&")</script>'})
    assert out == "<p>Welcome <b>&lt;script&gt;x(&quot;&amp;&quot;)&lt;/script&gt;</b></p>"


# --- header injection and the message ------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    ["Hi\r\nBcc: all@example.com", "Hi\nBcc: x@example.com", "Hi\r", "a\x00b", "a\u2028b"],
)
def test_a_subject_with_a_line_break_is_refused(subject: str) -> None:
    with pytest.raises(InvalidMail, match="subject"):
        mail(subject=subject)


def test_a_rendered_value_cannot_inject_a_header_through_the_subject() -> None:
    subject = render("Welcome {name}", {"name": "Ada\r\nBcc: everyone@example.com"})
    with pytest.raises(InvalidMail):
        mail(subject=subject)


@pytest.mark.parametrize(
    "address",
    [
        "a@example.com\r\nBcc: b@example.com",
        "a@example.com\n",
        "a@example.com, b@example.com",
        "Ada <a@example.com>",
        "no-at-sign",
        "@example.com",
        "a@",
        "a b@example.com",
        "a@-example.com",
        "ada@exämple.com",
    ],
)
def test_a_recipient_that_is_not_one_bare_address_is_refused(address: str) -> None:
    with pytest.raises(InvalidMail):
        mail(to=["ok@example.com", address])


def test_recipients_are_a_nonempty_list_without_repeats() -> None:
    with pytest.raises(InvalidMail, match="not one string"):
        mail(to="manager@example.com")
    with pytest.raises(InvalidMail, match="at least one"):
        mail(to=[])
    with pytest.raises(InvalidMail, match="twice"):
        mail(to=["a@example.com", "A@example.com"])
    assert mail(to=["a@example.com", "b@example.com"]).to == ("a@example.com", "b@example.com")


def test_the_message_id_is_fixed_per_run_and_task_and_checked() -> None:
    assert message_id("run-1", "welcome") == "<run-1.welcome@accord>"
    assert message_id("run-1", "welcome") == MID
    for run, task in [("run.1", "t"), ("r", "t\r\nX: y"), ("", "t"), ("r", "t@x")]:
        with pytest.raises(InvalidMail):
            message_id(run, task)
    with pytest.raises(InvalidMail, match="Message-ID"):
        mail(message_id="<a@b>\r\nBcc: x@example.com")
    with pytest.raises(InvalidMail, match="Message-ID"):
        mail(message_id="no-brackets@accord")


def test_build_message_sets_the_headers_and_both_bodies() -> None:
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    built = build_message(
        mail(to=["m@example.com", "hr@example.com"], html="<p>Ada</p>"),
        "accord@example.com",
        date=at,
    )
    parsed = message_from_bytes(built.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert parsed["From"] == "accord@example.com"
    assert parsed["To"] == "m@example.com, hr@example.com"
    assert parsed["Subject"] == "Welcome Ada"
    assert parsed["Message-ID"] == "<run-1.welcome@accord>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Date"].datetime == at
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().strip() == "Ada starts on Monday."
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Ada</p>"


def test_a_text_only_mail_is_one_plain_part() -> None:
    built = build_message(mail(), "accord@example.com", date=datetime.now(UTC))
    assert built.get_content_type() == "text/plain"
    with pytest.raises(InvalidMail):
        build_message(mail(), "accord@example.com\r\nBcc: x@example.com", date=datetime.now(UTC))


# --- the fake mailer -----------------------------------------------------------------


async def test_fake_mailer_records_sends_and_raises_scripted_failures_in_order() -> None:
    fake = FakeMailer()
    fake.fail_next(MailUnavailable("down"), MailRejected("550"))
    first = mail()
    with pytest.raises(MailUnavailable):
        await fake.send(first)
    with pytest.raises(MailRejected):
        await fake.send(first)
    await fake.send(first)
    await fake.send(mail(to=["other@example.com"], message_id=message_id("run-2", "bye")))
    assert fake.message_ids() == [MID, "<run-2.bye@accord>"]
    assert fake.to("MANAGER@example.com") == [first]


# --- SMTP settings -------------------------------------------------------------------


def test_smtp_settings_read_their_variables_and_hide_the_password() -> None:
    settings = SmtpSettings.model_validate(
        {
            "ACCORD_SMTP_HOST": "mail.example.com",
            "ACCORD_SMTP_SECURITY": "tls",
            "ACCORD_SMTP_USERNAME": "accord",
            "ACCORD_SMTP_PASSWORD": "hunter2-secret",
            "ACCORD_SMTP_FROM": "noreply@example.com",
            "ACCORD_SMTP_TIMEOUT_S": "5",
            "HOST": "ignored.example.com",
        }
    )
    assert settings.host == "mail.example.com"
    assert settings.effective_port == 465
    assert settings.sender == "noreply@example.com"
    assert settings.timeout_s == 5
    assert settings.password is not None
    assert settings.password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings.model_dump())


def test_smtp_settings_default_ports_follow_the_security_mode() -> None:
    assert SmtpSettings().effective_port == 587
    assert SmtpSettings(security="none").effective_port == 25
    assert SmtpSettings(security="none", port=2525).effective_port == 2525


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"username": "u"}, "go together"),
        ({"password": SecretStr("p")}, "go together"),
        ({"security": "none", "username": "u", "password": SecretStr("p")}, "clear text"),
        ({"sender": "a@example.com\r\nBcc: b@example.com"}, "line break"),
        ({"security": "smtps"}, "security"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_smtp_settings_refuse_inconsistent_values(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        SmtpSettings(**fields)  # type: ignore[arg-type]


def test_insecure_auth_is_allowed_only_when_asked_for() -> None:
    settings = SmtpSettings(
        security="none", username="u", password=SecretStr("p"), allow_insecure_auth=True
    )
    assert settings.username == "u"


# --- SMTP error mapping --------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x.org": (550, b"5.1.1 no such user")}), MailRejected),
        (smtplib.SMTPRecipientsRefused({"a@x.org": (451, b"4.3.0 try later")}), MailUnavailable),
        (
            smtplib.SMTPRecipientsRefused({"a@x.org": (451, b"later"), "b@x.org": (553, b"no")}),
            MailRejected,
        ),
        (smtplib.SMTPSenderRefused(553, b"5.7.1 not yours", "accord@x.org"), MailRejected),
        (smtplib.SMTPSenderRefused(421, b"4.7.0 busy", "accord@x.org"), MailUnavailable),
        (smtplib.SMTPDataError(554, b"5.6.0 message refused"), MailRejected),
        (smtplib.SMTPDataError(452, b"4.3.1 insufficient storage"), MailUnavailable),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), MailRejected),
        (smtplib.SMTPAuthenticationError(454, b"4.7.0 temporary auth failure"), MailUnavailable),
        (smtplib.SMTPConnectError(421, b"too many connections"), MailUnavailable),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported"), MailRejected),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), MailUnavailable),
        (smtplib.SMTPException("No suitable authentication method found."), MailRejected),
        (ConnectionRefusedError(111, "Connection refused"), MailUnavailable),
        (TimeoutError("timed out"), MailUnavailable),
        (socket.gaierror(-2, "Name or service not known"), MailUnavailable),
    ],
)
def test_smtp_errors_map_to_rejected_or_unavailable(
    error: BaseException, expected: type[Exception]
) -> None:
    mapped = classify(error)
    assert type(mapped) is expected


def test_the_mapped_error_says_what_the_server_answered() -> None:
    mapped = classify(smtplib.SMTPRecipientsRefused({"a@x.org": (550, b"5.1.1 no such user")}))
    assert "550" in str(mapped)
    assert "a@x.org" in str(mapped)
    assert "no such user" in str(mapped)


def test_classify_refuses_what_is_no_smtp_error() -> None:
    with pytest.raises(TypeError):
        classify(ValueError("not smtp"))
