"""Accord runtime."""
