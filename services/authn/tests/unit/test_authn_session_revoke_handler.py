"""A workflow's request to end an identity's sessions, on in-memory ports: revoked
everywhere and announced, whatever the identity's status, once per request's transaction."""

from __future__ import annotations

from accord.authn.domain.identity import Change
from accord.authn.fakes import Fakes
from accord.authn.handlers import on_session_revoke_requested
from accord.authn.handlers.sessions import request_txn
from accord.events import Envelope, SessionRevoked, SessionRevokeRequested, new_event

USER = "u-1"
RUN = "0b9c8f0e-1d2a-4c3b-8e7f-6a5b4c3d2e1f"


def request(attempt: int = 1, user: str = USER) -> tuple[Envelope, SessionRevokeRequested]:
    data = SessionRevokeRequested(
        user_id=user,
        request_id=f"{RUN}:revoke_sessions:{attempt}",
        reason="workflow contractor-end-date",
        run_id=RUN,
    )
    return new_event(data, source="accord/orchestrator", correlation_id=RUN), data


async def test_an_active_identitys_sessions_end_everywhere_and_it_is_announced() -> None:
    fakes = Fakes()
    await fakes.identities.apply(USER, Change(1, (USER, None), active=True))
    event, data = request()

    events = await on_session_revoke_requested(event, data, fakes.ports)

    assert [e.type for e in events] == ["session.revoked"]
    revoked = events[0].data
    assert isinstance(revoked, SessionRevoked)
    assert (revoked.user_id, revoked.reason, revoked.streams) == (
        USER,
        "workflow contractor-end-date",
        2,
    )
    assert events[0].causationid == event.id
    assert events[0].correlationid == RUN  # the run's flow
    assert fakes.signals.sent == [(USER, "session-revoked", "workflow contractor-end-date")]
    assert fakes.signals.txns == [request_txn(data.request_id)]
    assert fakes.lockouts.serialised == [USER]
    # Nothing else: no lockout, no account disabled, the identity stays active.
    assert fakes.lockouts.lockouts == {}
    assert await fakes.identities.status_of(USER) == "active"


async def test_an_inactive_or_unknown_identity_is_revoked_too() -> None:
    fakes = Fakes()
    await fakes.identities.apply("u-gone", Change(1, ("u-gone", None), active=False))
    for user in ("u-gone", "u-never-seen"):
        event, data = request(user=user)
        events = await on_session_revoke_requested(event, data, fakes.ports)
        assert [e.type for e in events] == ["session.revoked"]
    assert [who for who, _, _ in fakes.signals.sent] == ["u-gone", "u-never-seen"]


async def test_one_request_is_one_transaction_and_another_request_revokes_again() -> None:
    fakes = Fakes()
    event, data = request(attempt=1)
    await on_session_revoke_requested(event, data, fakes.ports)
    # The same request by another way (the inbox drops the same event id before this):
    # the same Shared Signals txn, so a receiver sees one transaction.
    again = new_event(data, source="accord/orchestrator")
    await on_session_revoke_requested(again, data, fakes.ports)
    # A new attempt is a new request: revoked and announced again, a new txn.
    later, later_data = request(attempt=2)
    events = await on_session_revoke_requested(later, later_data, fakes.ports)
    assert [e.type for e in events] == ["session.revoked"]
    assert fakes.signals.of(USER) == ["session-revoked"] * 3
    first, repeated, second = fakes.signals.txns
    assert first == repeated != second
