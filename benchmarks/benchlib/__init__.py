"""Helpers of the end-to-end benchmark (benchmarks/e2e.py): load, tracking, resources,
profiles, side measurements and the report."""
