"""Accord authz."""
