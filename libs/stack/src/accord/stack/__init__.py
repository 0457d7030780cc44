"""Accord stack."""
