"""Refuses connector URLs that point at link-local or cloud metadata addresses (SSRF).

The check is the runtime's (accord.runtime.url_guard, shared with the orchestrator's custom
extensions); here it names the targets file's opt-in, ``allow_link_local: true``.
"""

from __future__ import annotations

from accord.runtime import url_guard
from accord.runtime.url_guard import ForbiddenAddress, Resolver, system_resolver

__all__ = ["ForbiddenAddress", "Resolver", "check_url", "system_resolver"]

_OPT_IN = "set allow_link_local: true on the target if this is really intended"


def check_url(url: str, *, allow_link_local: bool, resolve: Resolver = system_resolver) -> None:
    """Raise ForbiddenAddress when the target URL's host is (or resolves to) a forbidden
    address, unless the target allows link-local addresses (see accord.runtime.url_guard)."""
    url_guard.check_url(url, allow_link_local=allow_link_local, resolve=resolve, opt_in=_OPT_IN)
