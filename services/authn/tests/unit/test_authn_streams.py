"""SSF 1.0 stream configuration: creation, what PATCH and PUT may change, push endpoints
that would reach a metadata service refused."""

from __future__ import annotations

from typing import Any

import pytest

from accord.authn.domain import set_tokens as st
from accord.authn.domain import streams as ss
from accord.authn.domain.streams import InvalidStream, StreamConfig

BASE = "https://accord.example.com"
POLL_URL = f"{BASE}/ssf/poll/s-1"
HOOK = "https://rp.example.com/events"


def create(body: dict[str, Any], *, allow_http: bool = False) -> StreamConfig:
    return ss.new_stream(
        body,
        stream_id="s-1",
        issuer=BASE,
        audience="rp-1",
        poll_url=POLL_URL,
        supported=st.TRANSMITTED,
        allow_http=allow_http,
    )


def push_stream(**delivery: Any) -> StreamConfig:
    return create(
        {
            "events_requested": [st.SESSION_REVOKED, "urn:example:unknown", st.SESSION_REVOKED],
            "delivery": {"method": ss.PUSH, "endpoint_url": HOOK, **delivery},
            "description": "for the wiki",
        }
    )


def test_a_stream_without_delivery_is_polled_from_the_transmitter() -> None:
    config = create({})

    shown = config.public()

    assert shown == {
        "stream_id": "s-1",
        "iss": BASE,
        "aud": "rp-1",
        "events_supported": list(st.TRANSMITTED),
        "events_requested": [],
        "events_delivered": [],
        "delivery": {"method": ss.POLL, "endpoint_url": POLL_URL},
        "min_verification_interval": ss.DEFAULT_MIN_VERIFICATION_INTERVAL_S,
    }


def test_delivered_is_requested_and_supported() -> None:
    config = push_stream()
    assert config.events_requested == (st.SESSION_REVOKED, "urn:example:unknown")
    assert config.events_delivered == (st.SESSION_REVOKED,)
    assert config.public()["description"] == "for the wiki"


def test_the_audience_is_the_receiver_and_a_create_may_only_echo_it() -> None:
    # aud is transmitter-supplied (SSF 1.0 section 8.1.1): the receiver the caller is, so no
    # receiver gets Accord-signed SETs addressed to another one.
    assert create({}).audience() == "rp-1"
    assert create({"aud": "rp-1"}).audience() == "rp-1"
    assert create({"aud": ["rp-1"]}).audience() == "rp-1"
    for other in ("rp-2", ["rp-1", "rp-2"], "https://rp.example.com", [], [1]):
        with pytest.raises(InvalidStream, match="aud is set by the transmitter"):
            create({"aud": other})
    with pytest.raises(InvalidStream, match="iss is set by the transmitter"):
        create({"iss": "https://other.example"})


def test_the_authorization_header_is_kept_but_never_shown() -> None:
    config = push_stream(authorization_header="Bearer s3cret")

    assert "s3cret" not in str(config.public())
    assert config.stored()["delivery"]["authorization_header"] == "Bearer s3cret"
    assert StreamConfig.from_stored(config.stored()) == config


@pytest.mark.parametrize("header", ["Bearer a\r\nX-Evil: 1", "", 7, "x" * 5000, "Bearer \u00e9"])
def test_an_authorization_header_is_one_printable_value(header: object) -> None:
    with pytest.raises(InvalidStream, match="authorization_header"):
        push_stream(authorization_header=header)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/events",
        "http://127.0.0.1:9000/ssf",
        "http://[::1]:9000/ssf",
        "https://10.0.0.5/events",
        "https://rp.example.com/events?tenant=1",
    ],
)
def test_push_endpoints_that_are_allowed(url: str) -> None:
    assert ss.check_push_endpoint(url, allow_http=True) == url
    if url.startswith("https://"):
        assert ss.check_push_endpoint(url) == url


def test_a_push_endpoint_is_https_unless_the_development_flag_allows_http() -> None:
    # RFC 8935 delivers over TLS; plain http only where ACCORD_SSF_ALLOW_HTTP says so.
    plain = {"delivery": {"method": ss.PUSH, "endpoint_url": "http://rp.example.com/events"}}
    with pytest.raises(InvalidStream, match="https"):
        ss.check_push_endpoint("http://rp.example.com/events")
    with pytest.raises(InvalidStream, match="https"):
        create(plain)
    with pytest.raises(InvalidStream, match="https"):
        ss.update_stream(
            push_stream(), {"stream_id": "s-1", **plain}, replace_all=False, poll_url=POLL_URL
        )
    assert create(plain, allow_http=True).delivery.endpoint_url == "http://rp.example.com/events"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://169.254.10.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("http://2852039166/", "link-local"),
        ("http://0xa9fea9fe/", "link-local"),
        ("http://169.254.43518/", "link-local"),
        ("http://0.0.0.0:80/", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://Metadata.Google.Internal./", "metadata"),
        ("ftp://rp.example.com/", "http"),
        ("file:///etc/passwd", "http"),
        ("https:///nohost", "host"),
        ("https://user:pw@rp.example.com/", "credentials"),
        ("https://rp.example.com/#frag", "fragment"),
        ("https://rp.example.com:99999/", "port"),
        ("https://rp.example.com/\n", "http"),
        (None, "http"),
    ],
)
def test_push_endpoints_that_are_refused(url: object, says: str) -> None:
    with pytest.raises(InvalidStream, match=says):
        ss.check_push_endpoint(url, allow_http=True)


@pytest.mark.parametrize(
    ("delivery", "says"),
    [
        ("push", "object"),
        ({"method": "urn:example:carrier-pigeon"}, "method"),
        ({"method": ss.PUSH}, "endpoint_url"),
        ({"method": ss.POLL, "endpoint_url": "https://elsewhere.example/poll"}, "transmitter"),
    ],
)
def test_bad_deliveries(delivery: object, says: str) -> None:
    with pytest.raises(InvalidStream, match=says):
        create({"delivery": delivery})


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"events_requested": "all"}, "events_requested"),
        ({"events_requested": [st.SESSION_REVOKED] * 65}, "64"),
        ({"events_requested": ["x" * 257]}, "64"),
        ({"description": "x" * 1025}, "description"),
        ({"description": "a\x00b"}, "description"),
    ],
)
def test_bad_receiver_supplied_properties(body: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidStream, match=says):
        create(body)


def test_a_patch_changes_only_what_it_names() -> None:
    current = push_stream(authorization_header="Bearer s3cret")

    changed = ss.update_stream(
        current,
        {"stream_id": "s-1", "events_requested": [st.ACCOUNT_DISABLED]},
        replace_all=False,
        poll_url=POLL_URL,
    )

    assert changed.events_delivered == (st.ACCOUNT_DISABLED,)
    assert changed.delivery == current.delivery
    assert changed.description == "for the wiki"


def test_a_put_replaces_every_receiver_supplied_property() -> None:
    current = push_stream()
    body = {**current.public(), "description": None}
    del body["events_requested"]

    changed = ss.update_stream(current, body, replace_all=True, poll_url=POLL_URL)

    assert changed.events_requested == ()
    assert changed.description is None
    assert changed.delivery.endpoint_url == HOOK


def test_a_put_without_delivery_turns_the_stream_to_poll() -> None:
    changed = ss.update_stream(
        push_stream(), {"stream_id": "s-1"}, replace_all=True, poll_url=POLL_URL
    )
    assert changed.delivery == ss.Delivery(ss.POLL, POLL_URL)


def test_what_was_read_may_be_written_back_unchanged() -> None:
    current = push_stream()
    assert ss.update_stream(current, current.public(), replace_all=True, poll_url=POLL_URL) == (
        current
    )


@pytest.mark.parametrize(
    "echo",
    [
        {"iss": "https://other.example"},
        {"aud": "rp-2"},
        {"aud": ["rp-1", "rp-2"]},
        {"events_supported": [st.SESSION_REVOKED]},
        {"events_delivered": [st.ACCOUNT_ENABLED]},
        {"events_delivered": "everything"},
        {"min_verification_interval": 1},
    ],
)
def test_transmitter_supplied_properties_cannot_be_changed(echo: dict[str, Any]) -> None:
    with pytest.raises(InvalidStream, match="set by the transmitter"):
        ss.update_stream(
            push_stream(), {"stream_id": "s-1", **echo}, replace_all=False, poll_url=POLL_URL
        )


def test_an_echoed_audience_may_be_a_list_or_a_string() -> None:
    current = push_stream()
    for aud in ("rp-1", ["rp-1"]):
        body = {"stream_id": "s-1", "aud": aud}
        assert ss.update_stream(current, body, replace_all=False, poll_url=POLL_URL) == current


def test_the_hidden_authorization_header_survives_a_delivery_update() -> None:
    current = push_stream(authorization_header="Bearer s3cret")
    same = {"stream_id": "s-1", "delivery": {"method": ss.PUSH, "endpoint_url": HOOK}}
    moved = {"stream_id": "s-1", "delivery": {"method": ss.PUSH, "endpoint_url": HOOK + "/v2"}}
    cleared = {
        "stream_id": "s-1",
        "delivery": {"method": ss.PUSH, "endpoint_url": HOOK, "authorization_header": None},
    }

    def update(body: dict[str, Any]) -> str | None:
        changed = ss.update_stream(current, body, replace_all=False, poll_url=POLL_URL)
        return changed.delivery.authorization_header

    assert update(same) == "Bearer s3cret"
    assert update(moved) is None  # a new endpoint does not inherit the old one's secret
    assert update(cleared) is None


def test_statuses() -> None:
    assert [ss.parse_status(s) for s in ss.STATUSES] == ["enabled", "paused", "disabled"]
    with pytest.raises(InvalidStream, match="status"):
        ss.parse_status("stopped")
    with pytest.raises(InvalidStream, match="reason"):
        ss.text({"reason": "r" * 257}, "reason")
    assert ss.text({}, "reason") is None
