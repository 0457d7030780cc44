"""`accord-authz`: run the authz service."""

from __future__ import annotations

from accord.authz.bootstrap import definition
from accord.authz.settings import AuthzSettings
from accord.runtime.service import run_service


def main() -> None:
    """Entry point."""
    settings = AuthzSettings()
    run_service(definition(settings), settings)


if __name__ == "__main__":
    main()
