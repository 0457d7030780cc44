"""Authn adapters: PostgreSQL and HTTP."""
