"""The SSRF address checks the provisioner and authn share."""

from __future__ import annotations

import ipaddress

import pytest

from accord.runtime.addresses import (
    first_forbidden,
    forbidden_host,
    is_forbidden_address,
    literal_address,
)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("169.254.169.254", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0XA9FEA9FE", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("[fe80::1]", "fe80::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.org", None),
        ("1.2.3.4.5", None),
    ],
)
def test_every_spelling_of_an_address_is_read(spelling: str, address: str | None) -> None:
    expected = None if address is None else ipaddress.ip_address(address)
    assert literal_address(spelling) == expected


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("::ffff:169.254.169.254", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("0.0.0.0", True),
        ("ff02::1", True),
        ("224.0.0.1", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("192.168.1.10", False),
        ("10.0.0.5", False),
        ("203.0.113.7", False),
    ],
)
def test_link_local_metadata_unspecified_and_multicast_are_forbidden(
    address: str, forbidden: bool
) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is forbidden


def test_a_host_is_refused_by_a_metadata_name_or_a_forbidden_spelling() -> None:
    assert "metadata service" in (forbidden_host("Metadata.Google.Internal.") or "")
    assert "169.254.169.254" in (forbidden_host("0xa9fea9fe") or "")
    assert forbidden_host("scim.example.org") is None
    assert forbidden_host("127.0.0.1") is None


def test_the_first_forbidden_address_a_name_resolved_to() -> None:
    assert first_forbidden(["203.0.113.7", "::ffff:169.254.169.254"]) == ipaddress.ip_address(
        "::ffff:169.254.169.254"
    )
    assert first_forbidden(["203.0.113.7", "10.0.0.1"]) is None
