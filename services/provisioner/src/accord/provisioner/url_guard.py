"""Refuses connector URLs that point at link-local or cloud metadata addresses (SSRF).

A targets file is configuration, but a URL that resolves to 169.254.169.254 (or any
link-local address) would let whoever edits it reach the cloud provider's metadata service
with the provisioner's network identity. Such targets need an explicit opt-in.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from accord.runtime.addresses import first_forbidden, forbidden_host, literal_address

Resolver = Callable[[str, int], Iterable[str]]

_OPT_IN = "set allow_link_local: true on the target if this is really intended"


class ForbiddenAddress(ValueError):
    """A target URL resolves to an address connectors must not call."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, *, allow_link_local: bool, resolve: Resolver = system_resolver) -> None:
    """Raise ForbiddenAddress when the URL's host is (or resolves to) a forbidden address
    (accord.runtime.addresses: link-local, metadata, unspecified, multicast).

    A host that does not resolve (yet) passes: the connector's own calls fail then, and
    retry, as for any unavailable target.
    """
    if allow_link_local:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ForbiddenAddress(f"{url!r} has no host")
    refused = forbidden_host(host)
    if refused is not None:
        raise ForbiddenAddress(f"{refused}; {_OPT_IN}")
    if literal_address(host) is not None:
        return
    port = parts.port or (443 if parts.scheme in ("https", "ldaps") else 80)
    try:
        addresses = list(resolve(host, port))
    except OSError:
        return
    address = first_forbidden(addresses)
    if address is not None:
        raise ForbiddenAddress(
            f"{host} resolves to {address}, a link-local or metadata address; {_OPT_IN}"
        )
