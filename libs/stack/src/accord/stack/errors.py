"""Errors raised by the embedded stack launchers."""


class StartupError(RuntimeError):
    """A part of the embedded stack could not be started or did not become ready."""
