"""Shared Signals Framework 1.0 event streams (§8): configuration, validation, updates.

Receiver-supplied properties: events_requested, delivery, description. Transmitter-supplied
ones (stream_id, iss, aud, events_supported, events_delivered, min_verification_interval, a
poll stream's endpoint_url) may be echoed back on create, PATCH and PUT but must then match;
changing them is a 400. `aud` is the receiver the stream belongs to (the caller that created
it), never what a request names: a receiver must not get SETs addressed to another receiver,
which it could replay to that one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from accord.runtime.addresses import METADATA_HOSTS, forbidden_host

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DELIVERY_METHODS = (PUSH, POLL)
Status = Literal["enabled", "paused", "disabled"]
STATUSES: tuple[Status, ...] = ("enabled", "paused", "disabled")
DEFAULT_MIN_VERIFICATION_INTERVAL_S = 15
MAX_EVENTS_REQUESTED = 64

_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{1,4096}$")


class InvalidStream(ValueError):
    """A stream request the transmitter refuses (answered 400)."""


@dataclass(frozen=True)
class Delivery:
    """How SETs reach the receiver: pushed to its endpoint, or polled from ours."""

    method: str
    endpoint_url: str
    authorization_header: str | None = None
    """Sent as the Authorization header of each push; stored, never shown or logged."""

    def public(self) -> dict[str, str]:
        """As the management API shows it: without the authorization header."""
        return {"method": self.method, "endpoint_url": self.endpoint_url}

    def stored(self) -> dict[str, str]:
        """As the database keeps it."""
        kept = self.public()
        if self.authorization_header:
            kept["authorization_header"] = self.authorization_header
        return kept


@dataclass(frozen=True)
class StreamConfig:
    """One stream's configuration (its status is kept apart: it changes on its own)."""

    stream_id: str
    iss: str
    aud: tuple[str, ...]
    events_supported: tuple[str, ...]
    events_requested: tuple[str, ...]
    delivery: Delivery
    description: str | None = None
    min_verification_interval: int = DEFAULT_MIN_VERIFICATION_INTERVAL_S

    @property
    def events_delivered(self) -> tuple[str, ...]:
        """Requested and supported, in the order requested."""
        return tuple(e for e in self.events_requested if e in self.events_supported)

    def audience(self) -> str | list[str]:
        """`aud` as SETs carry it: a string when there is one."""
        return self.aud[0] if len(self.aud) == 1 else list(self.aud)

    def public(self) -> dict[str, Any]:
        """The configuration the management API answers with."""
        shown: dict[str, Any] = {
            "stream_id": self.stream_id,
            "iss": self.iss,
            "aud": self.audience(),
            "events_supported": list(self.events_supported),
            "events_requested": list(self.events_requested),
            "events_delivered": list(self.events_delivered),
            "delivery": self.delivery.public(),
            "min_verification_interval": self.min_verification_interval,
        }
        if self.description is not None:
            shown["description"] = self.description
        return shown

    def stored(self) -> dict[str, Any]:
        """The configuration as the database keeps it (events_delivered for queries)."""
        return {**self.public(), "aud": list(self.aud), "delivery": self.delivery.stored()}

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> StreamConfig:
        """Back from the database."""
        delivery = data["delivery"]
        return cls(
            stream_id=data["stream_id"],
            iss=data["iss"],
            aud=tuple(data["aud"]),
            events_supported=tuple(data["events_supported"]),
            events_requested=tuple(data["events_requested"]),
            delivery=Delivery(
                delivery["method"], delivery["endpoint_url"], delivery.get("authorization_header")
            ),
            description=data.get("description"),
            min_verification_interval=int(data["min_verification_interval"]),
        )


def new_stream(
    body: Mapping[str, Any],
    *,
    stream_id: str,
    issuer: str,
    audience: str,
    poll_url: str,
    supported: Sequence[str],
    allow_http: bool = False,
) -> StreamConfig:
    """A stream from a create request (§8.1.1.1) for the receiver `audience`; no delivery
    means poll. A push endpoint is https unless `allow_http` (development)."""
    config = StreamConfig(
        stream_id=stream_id,
        iss=issuer,
        aud=(audience,),
        events_supported=tuple(supported),
        events_requested=_events(body.get("events_requested")),
        delivery=_delivery(
            body.get("delivery"), poll_url=poll_url, current=None, allow_http=allow_http
        ),
        description=_description(body.get("description")),
    )
    _check_echoes(config, body)
    return config


def update_stream(
    current: StreamConfig,
    body: Mapping[str, Any],
    *,
    replace_all: bool,
    poll_url: str,
    allow_http: bool = False,
) -> StreamConfig:
    """The configuration after a PATCH (only what is present changes, §8.1.1.3) or a PUT
    (every receiver-supplied property is replaced, §8.1.1.4)."""
    _check_echoes(current, body)
    changed = current
    if replace_all or "events_requested" in body:
        changed = replace(changed, events_requested=_events(body.get("events_requested")))
    if replace_all or "delivery" in body:
        delivery = _delivery(
            body.get("delivery"),
            poll_url=poll_url,
            current=current.delivery,
            allow_http=allow_http,
        )
        changed = replace(changed, delivery=delivery)
    if replace_all or "description" in body:
        changed = replace(changed, description=_description(body.get("description")))
    return changed


def parse_status(value: object) -> Status:
    """A stream status named in a request."""
    if value not in STATUSES:
        raise InvalidStream("status must be one of enabled, paused, disabled")
    return value


def text(body: Mapping[str, Any], name: str, *, max_length: int = 256) -> str | None:
    """An optional short printable text member of a request."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_length or _has_control(value):
        raise InvalidStream(f"{name} must be a printable text of at most {max_length} characters")
    return value


def _has_control(value: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _check_echoes(current: StreamConfig, body: Mapping[str, Any]) -> None:
    expected: dict[str, object] = {
        "iss": current.iss,
        "aud": set(current.aud),
        "events_supported": set(current.events_supported),
        "events_delivered": set(current.events_delivered),
        "min_verification_interval": current.min_verification_interval,
    }
    for name, value in expected.items():
        if name not in body:
            continue
        given = body[name]
        if isinstance(value, set):
            given = {given} if isinstance(given, str) else set(given) if _strings(given) else None
        if given != value:
            raise InvalidStream(f"{name} is set by the transmitter and cannot be changed")


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _events(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not _strings(value):
        raise InvalidStream("events_requested must be a list of event type URIs")
    assert isinstance(value, list)
    if len(value) > MAX_EVENTS_REQUESTED or any(
        not 0 < len(e) <= 256 or _has_control(e) for e in value
    ):
        raise InvalidStream(f"events_requested takes up to {MAX_EVENTS_REQUESTED} URIs")
    return tuple(dict.fromkeys(value))


def _description(value: object) -> str | None:
    return text({"description": value}, "description", max_length=1024)


def _delivery(
    value: object, *, poll_url: str, current: Delivery | None, allow_http: bool
) -> Delivery:
    if value is None:
        return Delivery(POLL, poll_url)
    if not isinstance(value, dict):
        raise InvalidStream("delivery must be an object")
    method = value.get("method")
    if method not in DELIVERY_METHODS:
        raise InvalidStream(f"delivery.method must be {PUSH} (push) or {POLL} (poll)")
    if method == POLL:
        if value.get("endpoint_url") not in (None, poll_url):
            raise InvalidStream("a poll stream's endpoint_url is set by the transmitter")
        return Delivery(POLL, poll_url)
    url = check_push_endpoint(value.get("endpoint_url"), allow_http=allow_http)
    if "authorization_header" in value:
        header = value["authorization_header"]
        if header is not None and (not isinstance(header, str) or not _HEADER_VALUE.match(header)):
            raise InvalidStream("delivery.authorization_header must be one printable header value")
    else:
        # Never shown, so never echoed back: absent means "keep it" for the same endpoint.
        same = current is not None and current.method == PUSH and current.endpoint_url == url
        header = current.authorization_header if same and current else None
    return Delivery(PUSH, url, header)


def check_push_endpoint(url: object, *, allow_http: bool = False) -> str:
    """A push endpoint_url: https (RFC 8935 delivers over TLS; http only with `allow_http`,
    for development), a host, no credentials, no metadata or link-local address (SSRF
    hygiene; loopback and private networks stay allowed)."""
    if not isinstance(url, str) or not 0 < len(url) <= 2048 or _has_control(url):
        raise InvalidStream("delivery.endpoint_url must be an http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidStream("delivery.endpoint_url must be an http(s) URL with a host")
    if parts.scheme != "https" and not allow_http:
        raise InvalidStream(
            "delivery.endpoint_url must be an https URL"
            " (plain http only where ACCORD_SSF_ALLOW_HTTP allows it, for development)"
        )
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise InvalidStream("delivery.endpoint_url must carry no credentials and no fragment")
    try:
        parts.port  # noqa: B018 - raises on an out-of-range port
    except ValueError:
        raise InvalidStream("delivery.endpoint_url has an invalid port") from None
    host = parts.hostname.rstrip(".").lower()
    if host in METADATA_HOSTS:
        raise InvalidStream("delivery.endpoint_url names a cloud metadata service")
    if forbidden_host(host) is not None:
        raise InvalidStream("delivery.endpoint_url is a link-local or metadata address")
    return url
