"""Pure domain of the orchestrator: no I/O."""
