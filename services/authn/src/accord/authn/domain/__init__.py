"""Authn domain: pure rules, no I/O."""
