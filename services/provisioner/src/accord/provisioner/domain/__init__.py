"""Pure domain of the provisioner: no I/O."""
