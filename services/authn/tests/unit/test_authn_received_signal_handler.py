"""The reaction to a security signal an identity provider pushed, on in-memory ports."""

from __future__ import annotations

from accord.authn.domain.identity import Change
from accord.authn.domain.set_tokens import Action, ReceivedSignal
from accord.authn.fakes import Fakes
from accord.authn.handlers import on_security_signal
from accord.events import IdentityLocked

USER = "u-1"
CAEP = "https://schemas.openid.net/secevent/caep/event-type"
RISC = "https://schemas.openid.net/secevent/risc/event-type"


def signal(action: Action, event_uri: str) -> ReceivedSignal:
    return ReceivedSignal(USER, "https://idp.example.com", "jti-1", event_uri, {}, action)


async def test_a_compromised_account_is_locked_and_its_sessions_end() -> None:
    fakes = Fakes()
    await fakes.identities.apply(USER, Change(1, (USER, None), active=True))

    events = await on_security_signal(
        signal("lock", f"{RISC}/account-credential-change-required"), fakes.ports
    )

    assert [e.type for e in events] == ["identity.locked", "session.revoked"]
    locked = events[0].data
    assert isinstance(locked, IdentityLocked)
    why = "account-credential-change-required from https://idp.example.com"
    assert locked.reason == f"security signal: {why}"
    assert all(e.causationid is None for e in events)
    assert fakes.signals.of(USER) == ["account-disabled", "session-revoked"]
    assert len(set(fakes.signals.txns)) == 1
    # Locked already: a second signal changes nothing.
    assert await on_security_signal(signal("lock", f"{RISC}/account-disabled"), fakes.ports) == []


async def test_a_revoked_session_ends_everywhere() -> None:
    fakes = Fakes()
    events = await on_security_signal(
        signal("revoke_sessions", f"{CAEP}/session-revoked"), fakes.ports
    )
    assert [e.type for e in events] == ["session.revoked"]
    assert events[0].data.model_dump()["reason"] == "session-revoked from https://idp.example.com"
    assert fakes.lockouts.lockouts == {}


async def test_a_signal_that_asks_for_nothing_does_nothing() -> None:
    fakes = Fakes()
    assert (
        await on_security_signal(signal("none", f"{CAEP}/token-claims-change"), fakes.ports) == []
    )
    assert fakes.signals.sent == []


async def test_the_reason_is_cut_to_200_characters() -> None:
    fakes = Fakes()
    long = ReceivedSignal(
        USER, "https://" + "i" * 300, "j", f"{CAEP}/session-revoked", {}, "revoke_sessions"
    )
    (revoked,) = await on_security_signal(long, fakes.ports)
    assert len(revoked.data.model_dump()["reason"]) == 200
