"""`accord-provisioner`: run the provisioner service."""

from __future__ import annotations

from accord.provisioner.bootstrap import definition
from accord.provisioner.settings import ProvisionerSettings
from accord.runtime.service import run_service


def main() -> None:
    """Entry point."""
    settings = ProvisionerSettings()
    run_service(definition(settings), settings)


if __name__ == "__main__":
    main()
