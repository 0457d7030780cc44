"""Accord auditor."""
