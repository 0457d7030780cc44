"""Shared test fixtures for the whole workspace: the real parts, started once per session."""

pytest_plugins = ["accord.stack.testing"]
