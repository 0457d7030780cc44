"""Refuses connector URLs that point at link-local or cloud metadata addresses (SSRF).

A targets file is configuration, but a URL that resolves to 169.254.169.254 (or any
link-local address) would let whoever edits it reach the cloud provider's metadata service
with the provisioner's network identity. Such targets need an explicit opt-in.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

#: Cloud metadata endpoints that are not link-local (AWS IPv6, Alibaba, Oracle legacy).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)

Resolver = Callable[[str, int], Iterable[str]]


class ForbiddenAddress(ValueError):
    """A target URL resolves to an address connectors must not call."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, *, allow_link_local: bool, resolve: Resolver = system_resolver) -> None:
    """Raise ForbiddenAddress when the URL's host is (or resolves to) a forbidden address.

    A host that does not resolve (yet) passes: the connector's own calls fail then, and
    retry, as for any unavailable target.
    """
    if allow_link_local:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ForbiddenAddress(f"{url!r} has no host")
    port = parts.port or (443 if parts.scheme in ("https", "ldaps") else 80)
    try:
        addresses = [host] if _is_address(host) else list(resolve(host, port))
    except OSError:
        return
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if address.is_link_local or address in METADATA_ADDRESSES:
            raise ForbiddenAddress(
                f"{host} resolves to {address}, a link-local or metadata address; set"
                " allow_link_local: true on the target if this is really intended"
            )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
