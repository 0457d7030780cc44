"""`accord.sources`: run the sources service."""

from __future__ import annotations

from accord.runtime.service import run_service
from accord.sources.bootstrap import definition
from accord.sources.settings import SourcesSettings


def main() -> None:
    """Entry point."""
    settings = SourcesSettings()
    run_service(definition(settings), settings)


if __name__ == "__main__":
    main()
