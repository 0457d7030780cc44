"""python -m accord.auditor: the same as `accord-auditor` (accord.auditor.main)."""

from __future__ import annotations

from accord.auditor.main import main

if __name__ == "__main__":
    main()
