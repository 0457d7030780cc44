"""I/O adapters of the orchestrator."""
