"""Accord orchestrator."""
