"""The provisioner's handlers: provision.requested turns into accounts in target systems."""

from accord.provisioner.handlers.provisioning import (
    Provisioning,
    command_work,
    on_provision_requested,
    record_provision_requested,
)

__all__ = [
    "Provisioning",
    "command_work",
    "on_provision_requested",
    "record_provision_requested",
]
