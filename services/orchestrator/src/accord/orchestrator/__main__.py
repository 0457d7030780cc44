"""python -m accord.orchestrator: the same as `accord-orchestrator` (accord.orchestrator.main)."""

from __future__ import annotations

from accord.orchestrator.main import main

if __name__ == "__main__":
    main()
