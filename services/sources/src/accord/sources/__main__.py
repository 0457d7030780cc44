"""python -m accord.sources: the same as `accord-sources` (accord.sources.main)."""

from __future__ import annotations

from accord.sources.main import main

if __name__ == "__main__":
    main()
