"""Connector URLs that reach link-local or cloud metadata addresses are refused (SSRF)."""

from __future__ import annotations

import pytest

from accord.provisioner.url_guard import ForbiddenAddress, Resolver, check_url


def resolving_to(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/scim/v2",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/latest",
        "ldap://169.254.10.10/",
        "http://0xa9fea9fe/",
        "http://2852039166/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://0.0.0.0:8080/",
    ],
)
def test_literal_metadata_and_link_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(ForbiddenAddress, match="allow_link_local"):
        check_url(url, allow_link_local=False, resolve=resolving_to())


def test_a_name_resolving_to_a_metadata_address_is_refused() -> None:
    with pytest.raises(ForbiddenAddress, match=r"169\.254\.169\.254"):
        check_url(
            "https://innocent.example.org/scim",
            allow_link_local=False,
            resolve=resolving_to("203.0.113.7", "169.254.169.254"),
        )


def test_a_name_resolving_to_an_ipv4_mapped_metadata_address_is_refused() -> None:
    with pytest.raises(ForbiddenAddress, match="allow_link_local"):
        check_url(
            "https://innocent.example.org/scim",
            allow_link_local=False,
            resolve=resolving_to("::ffff:169.254.169.254"),
        )


def test_ordinary_addresses_and_explicit_opt_in_pass() -> None:
    check_url(
        "https://api.slack.com/scim/v2", allow_link_local=False, resolve=resolving_to("203.0.113.7")
    )
    check_url("http://127.0.0.1:8080/v2", allow_link_local=False, resolve=resolving_to())
    check_url("http://169.254.169.254/", allow_link_local=True, resolve=resolving_to())


def test_a_name_that_does_not_resolve_yet_passes() -> None:
    def unresolvable(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    check_url("https://later.example.org/", allow_link_local=False, resolve=unresolvable)
