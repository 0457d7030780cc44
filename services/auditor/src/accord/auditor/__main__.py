"""python -m accord.auditor"""

from __future__ import annotations

from accord.auditor.bootstrap import definition
from accord.auditor.settings import AuditorSettings
from accord.runtime.service import run_service


def main() -> None:
    """Entry point."""
    settings = AuditorSettings()
    run_service(definition(settings), settings)


if __name__ == "__main__":
    main()
