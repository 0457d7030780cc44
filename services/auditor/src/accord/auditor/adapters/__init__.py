"""I/O adapters of the auditor."""
