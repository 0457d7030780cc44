"""I/O adapters of authz."""
