"""python -m accord.orchestrator"""

from __future__ import annotations

from accord.orchestrator.bootstrap import definition
from accord.orchestrator.settings import OrchestratorSettings
from accord.runtime.service import run_service


def main() -> None:
    """Entry point."""
    settings = OrchestratorSettings()
    run_service(definition(settings), settings)


if __name__ == "__main__":
    main()
