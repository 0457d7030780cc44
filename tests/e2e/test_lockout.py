"""Authentication risk end to end (issue 10): five failed sign-ins lock an identity: its
accounts are disabled in the SCIM and LDAP targets and a signed CAEP session-revoked SET
reaches a local Shared Signals receiver, which verifies it against authn's JWKS; the
manager approves an unlock and the accounts come back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import ldap3
import pytest
from ldap3.utils.dn import escape_rdn

from accord.events import AuthnFailed, Publisher, UserCreated, UserDeleted
from accord.runtime.security.roles import Role
from accord.stack.ldap_target import LdapTarget
from accord.stack.platform import Platform

from .conftest import LDAP_DEPARTMENT, api_client, eventually, target_account

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
ACCOUNT_DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
RECEIVER_TOKEN = "receiver-secret-token"


class LocalReceiver:
    """A Shared Signals receiver of the test's own: an RFC 8935 push endpoint (stdlib HTTP
    server in a thread) that keeps what arrives with the stream's authorization header."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.refused = 0
        receiver = self

        class Push(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Authorization") != f"Bearer {RECEIVER_TOKEN}":
                    receiver.refused += 1
                    self._answer(401, b'{"err": "authentication_failed"}')
                    return
                assert self.headers["Content-Type"].startswith("application/secevent+jwt")
                receiver.received.append(body.decode())
                self._answer(202, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Push)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalReceiver]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


def ldap_entry(ldap: LdapTarget, user_name: str) -> dict[str, Any] | None:
    """The user's LDAP entry's attributes, or None."""
    conn = ldap3.Connection(ldap3.Server(ldap.url), ldap.bind_dn, ldap.password, auto_bind=True)
    try:
        dn = f"uid={escape_rdn(user_name)},{ldap.people_dn}"
        if not conn.search(dn, "(objectClass=inetOrgPerson)", ldap3.BASE, attributes=["*"]):
            return None
        attributes: dict[str, Any] = conn.entries[0].entry_attributes_as_dict
        return attributes
    finally:
        conn.unbind()


async def ldap_disabled(ldap: LdapTarget, user_name: str, disabled: bool) -> bool:
    entry = await asyncio.to_thread(ldap_entry, ldap, user_name)
    return entry is not None and ("disabled" in entry.get("employeeType", [])) is disabled


Keys = dict[str, jwt.PyJWK]


async def authn_keys(platform: Platform) -> Keys:
    """authn's published signing keys (its JWKS), by kid."""
    async with api_client(platform, "authn") as client:
        jwks = (await client.get("/ssf/jwks.json")).json()
    return {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}


def decode_set(platform: Platform, token: str, keys: Keys, audience: str) -> Any:
    """A SET's claims, verified: its type, authn's key and signature, audience and issuer."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "secevent+jwt"
    return jwt.decode(
        token,
        keys[header["kid"]].key,
        algorithms=["ES256"],
        audience=audience,
        issuer=platform.endpoints()["authn"],
    )


def audience_of(stream: dict[str, Any]) -> str:
    """The audience a stream's SETs carry (SSF allows one or a list)."""
    audience: str = stream["aud"] if isinstance(stream["aud"], str) else stream["aud"][0]
    return audience


def subject_ids(sub_id: dict[str, Any]) -> set[str]:
    """The opaque ids and e-mails a subject identifier (RFC 9493) names."""
    if sub_id.get("format") == "aliases":
        return set().union(*(subject_ids(alias) for alias in sub_id["identifiers"]))
    return {sub_id[key] for key in ("id", "email") if key in sub_id}


def events_about(claims: list[Any], user_id: str, event_uri: str) -> list[Any]:
    return [c for c in claims if event_uri in c["events"] and user_id in subject_ids(c["sub_id"])]


async def test_five_failed_sign_ins_lock_the_identity_everywhere_and_an_approved_unlock_undoes_it(
    platform: Platform, kafka_bootstrap: str, ldap_target: LdapTarget, unique: str
) -> None:
    manager = UserCreated(user_id=f"m-{unique}", user_name=f"boss.{unique}")
    user = UserCreated(
        user_id=f"e-{unique}",
        user_name=f"sec.{unique}",
        department=LDAP_DEPARTMENT,
        manager_id=manager.user_id,
        email=f"sec.{unique}@example.com",
    )
    receiver_token = await platform.issue_token(f"rp-{unique}", {Role.SSF_RECEIVER})
    with LocalReceiver().running() as receiver:
        async with api_client(platform, "authn", receiver_token) as ssf:
            created = await ssf.post(
                "/ssf/streams",
                json={
                    "delivery": {
                        "method": PUSH,
                        "endpoint_url": receiver.url,
                        "authorization_header": f"Bearer {RECEIVER_TOKEN}",
                    },
                    "events_requested": [SESSION_REVOKED, ACCOUNT_DISABLED],
                    "description": "the test's receiver",
                },
            )
            assert created.status_code == 201, created.text
            stream = created.json()
            audience = audience_of(stream)
            keys = await authn_keys(platform)
            assert SESSION_REVOKED in stream["events_delivered"]

            async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
                await hr.publish(manager, sequence=1)
                await hr.publish(user, sequence=1)
            account = await target_account(platform, user.user_name, active=True)
            await eventually(
                lambda: ldap_disabled(ldap_target, user.user_name, False), what="the LDAP account"
            )

            async with Publisher(source="urn:test:okta", bootstrap_servers=kafka_bootstrap) as idp:
                for attempt in range(5):
                    await idp.publish(
                        AuthnFailed(
                            user_id=user.user_id,
                            idp="okta",
                            application="payroll",
                            methods=("pwd",),
                            reason=f"bad password ({attempt + 1})",
                        )
                    )

            # Both accounts disabled, and a signed session-revoked SET at the receiver.
            await target_account(platform, user.user_name, active=False)
            await eventually(
                lambda: ldap_disabled(ldap_target, user.user_name, True),
                what="the LDAP account to be disabled",
            )

            async def revoked() -> list[Any]:
                claims = [decode_set(platform, t, keys, audience) for t in receiver.received]
                return events_about(claims, user.user_id, SESSION_REVOKED)

            (session_revoked,) = await eventually(revoked, what="a session-revoked SET")
            assert subject_ids(session_revoked["sub_id"]) == {user.user_id, user.email}
            assert "event_timestamp" in session_revoked["events"][SESSION_REVOKED]
            claims = [decode_set(platform, t, keys, audience) for t in receiver.received]
            assert len(events_about(claims, user.user_id, ACCOUNT_DISABLED)) == 1
            assert receiver.refused == 0

            async with api_client(platform, "authn") as admin:
                locks = (await admin.get("/v1/lockouts", params={"user_id": user.user_id})).json()
                (lockout,) = locks["items"]
                assert lockout["open"] is True
                assert lockout["failures"] == 5
                asked = await admin.post(
                    "/v1/unlock-requests",
                    json={"user_id": user.user_id, "justification": "it was me, typo"},
                )
                assert asked.status_code == 202, asked.text
                request_id = asked.json()["request_id"]

            # The manager approves the unlock in authz; the accounts come back.
            manager_token = await platform.issue_token(manager.user_id, {Role.REQUESTER})
            async with (
                api_client(platform, "authz") as admin_authz,
                api_client(platform, "authz", manager_token) as manager_api,
            ):

                async def waiting() -> bool:
                    entry = await admin_authz.get(f"/v1/access-requests/{request_id}")
                    return (
                        entry.status_code == 200 and entry.json()["status"] == "approval_required"
                    )

                await eventually(waiting, what="the unlock request to wait for the manager")
                approved = await manager_api.post(
                    f"/v1/access-requests/{request_id}/approve",
                    json={"comment": "verified by phone"},
                )
                assert approved.status_code == 200, approved.text

            again = await target_account(platform, user.user_name, active=True)
            assert again["id"] == account["id"]
            await eventually(
                lambda: ldap_disabled(ldap_target, user.user_name, False),
                what="the LDAP account to be enabled again",
            )
            async with api_client(platform, "authn") as admin:
                lockout = (await admin.get(f"/v1/lockouts/{lockout['lockout_id']}")).json()
                assert lockout["open"] is False
                assert lockout["unlock_request_id"] == request_id


async def test_a_leaver_revokes_sessions_everywhere_within_seconds_over_a_poll_stream(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    leaver = UserCreated(user_id=f"l-{unique}", user_name=f"leaver.{unique}")
    receiver_token = await platform.issue_token(f"rp-poll-{unique}", {Role.SSF_RECEIVER})
    async with api_client(platform, "authn", receiver_token) as ssf:
        created = await ssf.post(
            "/ssf/streams",
            json={"delivery": {"method": POLL}, "events_requested": [SESSION_REVOKED]},
        )
        assert created.status_code == 201, created.text
        stream = created.json()
        poll_url = stream["delivery"]["endpoint_url"]
        assert poll_url.endswith(f"/ssf/poll/{stream['stream_id']}")
        audience = audience_of(stream)

        async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
            await hr.publish(leaver, sequence=1)
            await target_account(platform, leaver.user_name, active=True)
            left = await hr.publish(UserDeleted(user_id=leaver.user_id), sequence=2)

        keys = await authn_keys(platform)

        async def polled() -> list[Any]:
            page = await ssf.post(poll_url, json={"maxEvents": 10, "returnImmediately": True})
            assert page.status_code == 200, page.text
            found = []
            for jti, token in page.json()["sets"].items():
                claims = decode_set(platform, token, keys, audience)
                assert claims["jti"] == jti
                found.append(claims)
            return events_about(found, leaver.user_id, SESSION_REVOKED)

        (revoked,) = await eventually(polled, what="a session-revoked SET on the poll stream")
        # Within seconds of the leaver event (the SET's own time says when it was made).
        assert revoked["iat"] - left.time.timestamp() < 10
        acked = await ssf.post(
            poll_url, json={"ack": [revoked["jti"]], "maxEvents": 0, "returnImmediately": True}
        )
        assert acked.status_code == 200, acked.text
        again = await ssf.post(poll_url, json={"maxEvents": 10, "returnImmediately": True})
        assert revoked["jti"] not in again.json()["sets"]
