"""The workflow engine's effects: what each task command of a run becomes in the world.

`runs.advance` (pure) emits `runs.Effect` commands; the engine hands each one to an
`EffectRunner`, which turns it either into Kafka commands (emitted through the outbox in the
run's own transaction, so the run's new state and its requests commit together) or into I/O
done outside any transaction (`perform`). The existing services do the work unchanged:

======================  =====================================  ===========================
command                 what it becomes                        the answer
======================  =====================================  ===========================
Provision, ChangeGroup  not here: the engine starts a saga     ``saga.completed`` /
                        (``workflow_task``) for them; the      ``saga.failed``
                        saga's steps are provision.requested
RequireMfa              ``mfa.enrolment_requested`` (as the    none: done once emitted
                        joiner saga emits it)
RequestEntitlement      ``access.requested`` (requester        emitted = the request is
                        ``workflow:<workflow id>``, principal  acknowledged; the answer is
                        the identity, request_id = the         ``access.granted`` or a
                        idempotency key)                       refusal (access_requests.py)
AskApproval             ``approval.requested`` (approval_id =  emitted = the ask is
                        the idempotency key, expires_at = the  acknowledged; the decision
                        task's approval_timeout wake-up)       is ``approval.decided``
RevokeSessions          ``session.revoke_requested`` (authn    none: done once emitted
                        revokes whatever the status)           (authn: ``session.revoked``)
RevokeEntitlements      I/O: authz's grants (port              perform's outputs
                        :class:`AccessGrants`)
SendMail                I/O: the Mailer                        perform's outputs
CallExtension           I/O: the ExtensionClient (+ the        perform's outputs; the
                        callback registered first)             callback later
IssueAccessPass         I/O: authn's access pass API (port     perform's outputs
                        :class:`AccessPasses`), the code
                        mailed in the same perform
======================  =====================================  ===========================

Approvals: authz resolves the approvers (manager, group members, named users; never the
identity), records the ask once per ``approval_id`` and answers ``approval.decided`` (an
ask that names nobody is rejected at once, by ``authz``). ``expires_at`` is the instant the
run's ``approval_timeout`` wake-up fires: the approval task's stored wait (``waiting_for
["until"]``, set by ``runs`` in the same step), else the run's step time plus the timeout;
either way a re-emission of the same ask carries the same instant, so it is the same event.
An escalation is a new attempt: a new approval_id, a new event.

Session revocation: authn revokes the identity's sessions everywhere (CAEP session-revoked
to every Shared Signals stream, then ``session.revoked``) whatever its status, as on a
lockout or a deactivation; the request is sent for an inactive identity too (a repeat
revocation is harmless, and authn's inbox takes one event id once).

The I/O edges: ``adapters/access_passes.py`` (authn, ``ACCORD_AUTHN_URL`` + a token file),
``adapters/authz_grants.py`` (authz, ``ACCORD_AUTHZ_URL`` + a token file), the Mailer
(``adapters/smtp.py``) and ``extensions.ExtensionClient``; ``effect_fakes.py`` has the
in-memory ones. The Kafka commands are among the topics the orchestrator may write
(accord.stack.kafka_acls: access.requested, approval.requested, session.revoke_requested).

Idempotency: every envelope's event id is derived from the command's idempotency key (and
the target), so a command emitted twice after a crash is the same event; the provisioner
and authz recognise a repeated step or request by saga_id/step_id and request_id. I/O
carries the key too (the extension's Idempotency-Key, the mail's fixed Message-ID).

Secrets: an extension's secret is read from its environment variable at each call and only
its *name* is registered for the callback check; an access pass code goes into the mail
text and nowhere else (never logged, never in outputs or exceptions).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from accord.events import (
    AccessRequested,
    ApprovalRequested,
    Envelope,
    EventData,
    MfaEnrolmentRequested,
    Profile,
    Resource,
    SessionRevokeRequested,
    new_event,
)
from accord.events.catalogue.authn import Factor
from accord.orchestrator.workflows import access_requests, runs
from accord.orchestrator.workflows.extensions import (
    ExtensionCall,
    ExtensionRejected,
    ExtensionUnavailable,
    Outputs,
    new_callback,
)
from accord.orchestrator.workflows.mail import (
    InvalidMail,
    Mail,
    Mailer,
    MailRejected,
    MailUnavailable,
    TemplateError,
    check_template,
    message_id,
    render,
)
from accord.orchestrator.workflows.run_model import Run

log = logging.getLogger(__name__)

__all__ = [
    "MAIL_PLACEHOLDERS",
    "AccessGrants",
    "AccessPassError",
    "AccessPasses",
    "CallbackRegistry",
    "Directory",
    "EffectFailed",
    "EffectRunner",
    "EffectSettings",
    "Effects",
    "ExtensionCaller",
    "HeldGrant",
    "IssuedPass",
    "MailTemplate",
]

_EVENT_NAMESPACE = uuid.UUID("0b8f3a52-6d1e-4f0c-9a57-3e2f8c1d7b64")


# --- the interface the engine codes against --------------------------------------------


class EffectFailed(Exception):
    """An effect did not happen; ``retryable`` for a transient failure (the task's retry
    policy applies, not before ``retry_after_s``), else the task fails for good."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class EffectRunner(Protocol):
    """What the engine asks of the effect layer (see the module docstring)."""

    def envelopes(
        self,
        command: runs.Effect,
        run: Run,
        identity: Mapping[str, Any],
        cause: Envelope | None,
    ) -> list[Envelope] | None:
        """Kafka commands for this effect (emitted through the outbox in the run's
        transaction), or None if the effect is I/O done by perform(). Account tasks
        (Provision, ChangeGroup) never come here: the engine runs them as sagas."""
        ...

    async def perform(
        self, command: runs.Effect, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Do the effect's I/O outside any transaction; its outputs; raises EffectFailed."""
        ...


# --- the collaborators' ports ------------------------------------------------------------


class Directory(Protocol):
    """People the mail goes to or names: the registry's entries, by user id."""

    async def email_of(self, user_id: str) -> str | None:
        """The person's work e-mail, or None (unknown person, or no address)."""
        ...

    async def name_of(self, user_id: str) -> str | None:
        """The person's display name (else given and family name), or None."""
        ...


class CallbackRegistry(Protocol):
    """Keeps what a waiting extension call's callback is checked against (callback_api's
    `CallbackSecrets` reads it back): the token, and the *name* of the variable holding the
    secret (read at check time: a rotated secret works, and no secret sits in a table)."""

    async def register(self, run_id: str, task_id: str, *, token: str, secret_env: str) -> None:
        """Await a callback for the task with this token (a later attempt replaces it)."""
        ...


class ExtensionCaller(Protocol):
    """`extensions.ExtensionClient.call`."""

    async def call(self, call: ExtensionCall) -> Outputs: ...


@dataclass(frozen=True)
class IssuedPass:
    """A temporary access pass just issued: its code (shown this once) and its end."""

    code: str = field(repr=False)
    expires_at: datetime


class AccessPassError(Exception):
    """authn did not issue the pass; ``retryable`` for a transient failure."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class AccessPasses(Protocol):
    """authn's Temporary Access Passes (adapters/access_passes.py over its HTTP API)."""

    async def issue(self, user_id: str, *, lifetime: timedelta, one_time: bool) -> IssuedPass:
        """Issue (replace) the identity's pass; raises AccessPassError."""
        ...


@dataclass(frozen=True)
class HeldGrant:
    """A live grant of the identity: what revoke_entitlement may end."""

    grant_id: str
    application: str
    entitlement: str

    @property
    def name(self) -> str:
        return f"{self.application}/{self.entitlement}"


class AccessGrants(Protocol):
    """authz's grants of an identity (authz is their owner: revoking is asked of it, never
    announced by the orchestrator, so authz's record and the memberships stay one).

    Raises EffectFailed for a failure (retryable or not)."""

    async def held(self, user_id: str) -> Sequence[HeldGrant]:
        """The identity's live grants."""
        ...

    async def allowed(self, user_id: str, application: str, entitlement: str) -> bool:
        """Whether authz's policies would grant it to the identity as it is now."""
        ...

    async def revoke(self, grant_id: str, reason: str) -> None:
        """End the grant (nothing if it ended already)."""
        ...


@dataclass(frozen=True)
class MailTemplate:
    """A named mail template (send_email's ``template``): subject and text body."""

    subject: str
    body: str


#: What a mail template may name: the identity's fields and its manager's name.
MAIL_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "user_id",
        "user_name",
        "display_name",
        "given_name",
        "family_name",
        "email",
        "title",
        "department",
        "employee_number",
        "cost_center",
        "employee_type",
        "hire_date",
        "leave_date",
        "time_zone",
        "manager_name",
        "manager_email",
    }
)

#: The access pass mail (a template, not a secret: the code is a placeholder).
_TAP_MAIL_SUBJECT = "Temporary access pass for {display_name}"
_TAP_MAIL_BODY = """Hello,

Here is the temporary access pass of {display_name} ({user_name}):

    {code}

It is valid until {expires_at}{use}. With it, {display_name} signs in once and enrols a
first sign-in factor. Hand it over in person or by phone; do not forward this mail.

Accord
"""


@dataclass(frozen=True)
class EffectSettings:
    """How the effects behave (from the orchestrator's settings)."""

    mfa_factors: tuple[Factor, ...] = ("totp",)
    """Factors require_mfa_enrolment asks for (the joiner saga's ACCORD_MFA_ENROLMENT)."""
    extension_timeout_s: float = 10.0
    """How long one extension call may take."""
    callback_base_url: str | None = None
    """The orchestrator's public base URL; a waiting extension call calls back under it."""


# --- the implementation ------------------------------------------------------------------


class Effects:
    """The EffectRunner over the platform's services (see the module docstring)."""

    def __init__(
        self,
        *,
        source: str,
        mailer: Mailer,
        directory: Directory,
        extensions: ExtensionCaller,
        callbacks: CallbackRegistry,
        access_passes: AccessPasses | None = None,
        grants: AccessGrants | None = None,
        templates: Mapping[str, MailTemplate] | None = None,
        settings: EffectSettings | None = None,
    ) -> None:
        self._source = source
        self._mailer = mailer
        self._directory = directory
        self._extensions = extensions
        self._callbacks = callbacks
        self._access_passes = access_passes
        self._grants = grants
        self._templates = dict(templates or {})
        self._settings = settings or EffectSettings()

    # Kafka commands ----------------------------------------------------------------------

    def envelopes(
        self,
        command: runs.Effect,
        run: Run,
        identity: Mapping[str, Any],
        cause: Envelope | None,
    ) -> list[Envelope] | None:
        """The Kafka commands of a RequireMfa, RequestEntitlement, AskApproval or
        RevokeSessions; None for the I/O effects (perform). Account tasks (Provision,
        ChangeGroup) are the engine's: it runs them as sagas (`TaskSagas`)."""
        if isinstance(command, runs.RequireMfa):
            enrol = MfaEnrolmentRequested(
                user_id=run.identity_id, factors=self._settings.mfa_factors, saga_id=run.run_id
            )
            return [self._event(command, run, cause, enrol)]
        if isinstance(command, runs.RequestEntitlement):
            return [self._event(command, run, cause, _access_request(command, run))]
        if isinstance(command, runs.AskApproval):
            return [self._event(command, run, cause, _approval_request(command, run))]
        if isinstance(command, runs.RevokeSessions):
            revoke = SessionRevokeRequested(
                user_id=run.identity_id,
                request_id=command.idempotency_key,
                reason=f"workflow {run.workflow_id}"[:256],
                run_id=run.run_id,
            )
            return [self._event(command, run, cause, revoke)]
        return None

    def _event(
        self,
        command: runs.Effect,
        run: Run,
        cause: Envelope | None,
        data: EventData,
        part: str = "",
    ) -> Envelope:
        """The envelope of a command: its id derived from the idempotency key (a repeat is
        the same event), caused by the trigger, else correlated by the run."""
        event_id = str(uuid.uuid5(_EVENT_NAMESPACE, f"{command.idempotency_key}:{part}"))
        if cause is not None:
            return new_event(data, source=self._source, causation=cause, event_id=event_id)
        return new_event(data, source=self._source, correlation_id=run.run_id, event_id=event_id)

    # I/O -----------------------------------------------------------------------------------

    async def perform(
        self, command: runs.Effect, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Do an I/O effect; its outputs (become ``vars.<task id>``); raises EffectFailed."""
        if isinstance(command, runs.SendMail):
            return await self._send_mail(command, run, identity)
        if isinstance(command, runs.CallExtension):
            return await self._call_extension(command, run, identity)
        if isinstance(command, runs.IssueAccessPass):
            return await self._issue_access_pass(command, run, identity)
        if isinstance(command, runs.RevokeEntitlements):
            return await self._revoke_entitlements(command, run, identity)
        raise EffectFailed(
            f"{type(command).__name__} is a Kafka command, not an I/O effect", retryable=False
        )

    async def _send_mail(
        self, command: runs.SendMail, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        if command.template is not None:
            template = self._templates.get(command.template)
            if template is None:
                raise EffectFailed(f"no mail template {command.template!r}", retryable=False)
            subject, body = template.subject, template.body
        else:
            if command.subject is None or command.body is None:
                raise EffectFailed("a mail needs a subject and a body", retryable=False)
            subject, body = command.subject, command.body
        try:
            check_template(subject, MAIL_PLACEHOLDERS)
            check_template(body, MAIL_PLACEHOLDERS)
        except TemplateError as error:
            raise EffectFailed(f"mail template: {error}", retryable=False) from None
        recipients = await self._recipients(command.to, run, identity)
        values = await self._values(run, identity)
        try:
            mail = Mail(
                to=recipients,
                subject=render(subject, values),
                text=render(body, values),
                message_id=message_id(run.run_id, _task(command)),
            )
        except (TemplateError, InvalidMail) as error:
            raise EffectFailed(f"mail: {error}", retryable=False) from None
        await self._send(mail)
        return {"recipients": len(recipients)}

    async def _recipients(
        self, to: Sequence[str], run: Run, identity: Mapping[str, Any]
    ) -> list[str]:
        """Each recipient's address, once: the manager's from the directory, the
        identity's own, or the literal address."""
        found: dict[str, str] = {}
        for recipient in to:
            address = await self._address(recipient, run, identity)
            found.setdefault(address.lower(), address)
        return list(found.values())

    async def _address(self, recipient: str, run: Run, identity: Mapping[str, Any]) -> str:
        if recipient == "identity":
            email = identity.get("email")
            if not email:
                raise EffectFailed(f"identity {run.identity_id} has no e-mail", retryable=False)
            return str(email)
        if recipient == "manager":
            manager = identity.get("manager_id")
            if not manager:
                raise EffectFailed(f"identity {run.identity_id} has no manager", retryable=False)
            email = await self._directory.email_of(str(manager))
            if not email:
                raise EffectFailed(f"manager {manager} has no e-mail", retryable=False)
            return email
        return recipient

    async def _values(self, run: Run, identity: Mapping[str, Any]) -> dict[str, str]:
        """The placeholders' values: the identity's fields that have one, its display name
        (given and family name, else user name, when it has none) and its manager's."""
        values = {
            name: str(identity[name])
            for name in MAIL_PLACEHOLDERS
            if identity.get(name) not in (None, "")
        }
        values["user_id"] = run.identity_id
        if "display_name" not in values:
            names = [values.get("given_name"), values.get("family_name")]
            shown = " ".join(n for n in names if n) or values.get("user_name")
            if shown:
                values["display_name"] = shown
        manager = identity.get("manager_id")
        if manager:
            name = await self._directory.name_of(str(manager))
            if name:
                values["manager_name"] = name
            email = await self._directory.email_of(str(manager))
            if email:
                values["manager_email"] = email
        return values

    async def _send(self, mail: Mail) -> None:
        try:
            await self._mailer.send(mail)
        except MailRejected as error:
            raise EffectFailed(f"mail refused: {error}", retryable=False) from None
        except MailUnavailable as error:
            raise EffectFailed(f"mail server unavailable: {error}", retryable=True) from None

    async def _call_extension(
        self, command: runs.CallExtension, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        task_id = _task(command)
        callback = None
        if command.wait_for_callback:
            base = self._settings.callback_base_url
            if not base:
                raise EffectFailed(
                    "the extension waits for a callback but no callback base URL is configured",
                    retryable=False,
                )
            callback = new_callback(base, run.run_id, task_id)
            # Registered before the call: an extension may call back before it answers.
            await self._callbacks.register(
                run.run_id, task_id, token=callback.token, secret_env=command.secret_env
            )
        call = ExtensionCall(
            run_id=run.run_id,
            task_id=task_id,
            url=command.url,
            secret_env=command.secret_env,
            identity=_extension_identity(run, identity),
            callback=callback,
            timeout_s=self._settings.extension_timeout_s,
        )
        try:
            return dict(await self._extensions.call(call))
        except ExtensionRejected as error:
            raise EffectFailed(error.reason, retryable=False) from None
        except ExtensionUnavailable as error:
            raise EffectFailed(
                error.reason, retryable=True, retry_after_s=error.retry_after
            ) from None

    async def _issue_access_pass(
        self, command: runs.IssueAccessPass, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        if self._access_passes is None:
            raise EffectFailed(
                "temporary access passes need authn's API (ACCORD_AUTHN_URL): not configured",
                retryable=False,
            )
        # Who gets it is known before a pass exists: no pass is issued for nobody.
        recipient = await self._address(command.deliver_to, run, identity)
        values = await self._values(run, identity)
        try:
            issued = await self._access_passes.issue(
                run.identity_id, lifetime=command.lifetime, one_time=command.one_time
            )
        except AccessPassError as error:
            raise EffectFailed(
                f"access pass: {error.reason}",
                retryable=error.retryable,
                retry_after_s=error.retry_after_s,
            ) from None
        expires_at = issued.expires_at.isoformat()
        values.setdefault("display_name", run.identity_id)
        values.setdefault("user_name", run.identity_id)
        values.update(
            code=issued.code,
            expires_at=expires_at,
            use=" and can be used once" if command.one_time else "",
        )
        try:
            mail = Mail(
                to=[recipient],
                subject=render(_TAP_MAIL_SUBJECT, values),
                text=render(_TAP_MAIL_BODY, values),
                message_id=message_id(run.run_id, _task(command)),
            )
        except (TemplateError, InvalidMail) as error:
            raise EffectFailed(f"access pass mail: {error}", retryable=False) from None
        # A send that fails after the pass was issued: the retry issues a new pass, which
        # replaces this one (authn keeps one per identity), so no undelivered code stays valid.
        await self._send(mail)
        log.info(
            "access pass issued and mailed",
            extra={"run_id": run.run_id, "task_id": command.task_id, "to": command.deliver_to},
        )
        return {"expires_at": expires_at}

    async def _revoke_entitlements(
        self, command: runs.RevokeEntitlements, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        if self._grants is None:
            raise EffectFailed(
                "revoke_entitlement needs authz's grants API: not configured", retryable=False
            )
        held = await self._grants.held(run.identity_id)
        if command.entitlements != "all":
            wanted = set(command.entitlements)
            held = [grant for grant in held if grant.name in wanted]
        revoked: list[str] = []
        kept: list[str] = []
        reason = f"workflow {run.workflow_id}"[:256]
        for grant in held:
            if command.unless_allowed and await self._grants.allowed(
                run.identity_id, grant.application, grant.entitlement
            ):
                kept.append(grant.name)
                continue
            await self._grants.revoke(grant.grant_id, reason)
            revoked.append(grant.name)
        return {"revoked": len(revoked), "kept": len(kept)}


# --- helpers -----------------------------------------------------------------------------

_PROFILE_FIELDS = frozenset(Profile.model_fields)


def _profile(identity: Mapping[str, Any]) -> Profile:
    """The identity's profile fields as a Profile; locked (``locked``/``locked_by``, as the
    sagas' effective profile) -> ``active: false``."""
    fields = {
        name: value
        for name, value in identity.items()
        if name in _PROFILE_FIELDS and value is not None
    }
    if identity.get("locked") or identity.get("locked_by"):
        fields["active"] = False
    try:
        return Profile.model_validate(fields)
    except ValidationError as error:
        problems = ", ".join(".".join(map(str, e["loc"])) for e in error.errors())
        raise EffectFailed(
            f"the identity's profile is not valid: {problems}", retryable=False
        ) from None


def _extension_identity(run: Run, identity: Mapping[str, Any]) -> dict[str, Any]:
    """What an extension is told about the identity: its user id and its profile fields
    (JSON-shaped), nothing else (no status, lock, or anything the engine keeps)."""
    profile = _profile(identity)
    return {"user_id": run.identity_id, **profile.model_dump(mode="json", exclude_none=True)}


def _access_request(command: runs.RequestEntitlement, run: Run) -> AccessRequested:
    application, _, entitlement = command.entitlement.partition("/")
    return AccessRequested(
        request_id=access_requests.request_id(command),
        requester_id=f"workflow:{run.workflow_id}"[:128],
        principal_id=run.identity_id,
        resource=Resource(application=application, entitlement=entitlement),
        justification=command.justification,
    )


def _approval_request(command: runs.AskApproval, run: Run) -> ApprovalRequested:
    """The ask authz records once per approval_id (module docstring); EffectFailed
    (permanent) when the ask cannot be a valid event (e.g. more approvers than one ask may
    name)."""
    reason = (command.reason or "").strip()[:256] or None
    try:
        return ApprovalRequested(
            approval_id=command.idempotency_key,
            user_id=run.identity_id,
            workflow_id=run.workflow_id,
            run_id=run.run_id,
            task_id=_task(command),
            approvers=command.approvers,
            reason=reason,
            expires_at=_approval_expiry(command, run),
            escalation=command.escalation,
        )
    except ValidationError as error:
        problems = ", ".join(".".join(map(str, e["loc"])) for e in error.errors())
        raise EffectFailed(
            f"the approval request is not valid: {problems}", retryable=False
        ) from None


def _approval_expiry(command: runs.AskApproval, run: Run) -> datetime:
    """When the run stops waiting for this ask: the approval task's stored wait (the
    approval_timeout wake-up's instant), else the run's step time plus the timeout. Both
    come from the stored run, so a re-emission of the ask carries the same instant."""
    task = run.task(_task(command))
    waiting = (task.waiting_for or {}) if task is not None else {}
    until = waiting.get("until")
    if waiting.get("kind") == "approval" and isinstance(until, str):
        return datetime.fromisoformat(until)
    return run.updated_at + command.timeout


def _task(command: runs.Effect) -> str:
    assert command.task_id is not None, "an effect belongs to a task"
    return command.task_id
