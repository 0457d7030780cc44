"""`accord.authn`: run the authn service."""

from __future__ import annotations

from accord.authn.bootstrap import definition
from accord.authn.settings import AuthnSettings
from accord.runtime.service import run_service


def main() -> None:
    """Entry point."""
    settings = AuthnSettings()
    run_service(definition(settings), settings)


if __name__ == "__main__":
    main()
