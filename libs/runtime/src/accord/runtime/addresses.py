"""Addresses an outbound call must not reach (SSRF): link-local ones (where cloud metadata
services answer), metadata services outside link-local, unspecified and multicast; in every
spelling a host may take. Loopback and private networks stay allowed: targets live there.

Pure: the caller resolves names (the provisioner's check at start-up, authn's before each
push), so a name that resolves to a forbidden address is caught as well as a literal.
"""

from __future__ import annotations

import ipaddress
import re
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names cloud instance metadata services answer on.
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)
#: Metadata addresses outside the link-local ranges (AWS IPv6, Alibaba Cloud, Oracle legacy).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_INET_ATON_FORM = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


def literal_address(host: str) -> Address | None:
    """The address a host name spells, including the forms inet_aton also reads
    (`2852039166`, `0xa9fea9fe`, `169.254.43518`) and a zone (`fe80::1%eth0`), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    if _INET_ATON_FORM.match(host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_forbidden_address(address: Address) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10, cloud metadata), unspecified or multicast; an
    IPv4-mapped IPv6 address is judged as the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address in METADATA_ADDRESSES
    )


def forbidden_host(host: str) -> str | None:
    """Why a URL's host is refused as written (a metadata service's name, or a forbidden
    address in any spelling), else None; names still need resolving."""
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTS:
        return f"{host} names a cloud metadata service"
    address = literal_address(name)
    if address is not None and is_forbidden_address(address):
        return f"{host} is {address}, a link-local or metadata address"
    return None


def first_forbidden(addresses: list[str]) -> Address | None:
    """The first forbidden address among those a name resolved to."""
    for text in addresses:
        address = literal_address(text)
        if address is not None and is_forbidden_address(address):
            return address
    return None
