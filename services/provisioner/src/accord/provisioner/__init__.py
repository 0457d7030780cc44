"""Accord provisioner."""
