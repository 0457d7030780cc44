"""Connectors to target systems."""
