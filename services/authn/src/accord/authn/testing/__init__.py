"""Test doubles other tests (and the end-to-end tests) use instead of real devices."""

from accord.authn.testing.authenticator import SoftwareAuthenticator

__all__ = ["SoftwareAuthenticator"]
