"""Refuses outbound URLs that point at link-local or cloud metadata addresses (SSRF).

A provisioner target or a workflow's custom extension is configuration, but a URL that
resolves to 169.254.169.254 (or any link-local address) would let whoever edits it reach the
cloud provider's metadata service with the service's network identity. Such URLs need an
explicit opt-in, whose wording each caller gives (`opt_in`), as its configuration names it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from accord.runtime.addresses import first_forbidden, forbidden_host, literal_address

Resolver = Callable[[str, int], Iterable[str]]

DEFAULT_OPT_IN = "allow link-local addresses explicitly if this is really intended"


class ForbiddenAddress(ValueError):
    """A URL resolves to an address outbound calls must not reach."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (blocking: call it off the event loop)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def check_url(
    url: str,
    *,
    allow_link_local: bool,
    resolve: Resolver = system_resolver,
    opt_in: str = DEFAULT_OPT_IN,
) -> None:
    """Raise ForbiddenAddress when the URL's host is (or resolves to) a forbidden address
    (accord.runtime.addresses: link-local, metadata, unspecified, multicast).

    `opt_in` ends the message: how to allow such a URL all the same. A host that does not
    resolve (yet) passes: the caller's own calls fail then, and retry, as for any
    unavailable endpoint.
    """
    if allow_link_local:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ForbiddenAddress(f"{url!r} has no host")
    refused = forbidden_host(host)
    if refused is not None:
        raise ForbiddenAddress(f"{refused}; {opt_in}")
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
            f"{host} resolves to {address}, a link-local or metadata address; {opt_in}"
        )
