"""Pure domain of the auditor: no I/O."""
