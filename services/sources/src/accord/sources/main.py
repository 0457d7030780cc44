"""`accord.sources`: run the sources service."""

from __future__ import annotations

import sys

from accord.runtime.service import run_service
from accord.sources.bootstrap import definition
from accord.sources.config import SourcesConfigError
from accord.sources.settings import SourcesSettings


def main() -> None:
    """Entry point; a sources file that cannot be used stops it with one line."""
    settings = SourcesSettings()
    try:
        service = definition(settings)
    except (OSError, SourcesConfigError) as error:
        where = settings.sources_file
        sys.exit(f"accord-sources: ACCORD_SOURCES_FILE {where}: {error}")
    run_service(service, settings)


if __name__ == "__main__":
    main()
