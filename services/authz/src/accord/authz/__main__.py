"""python -m accord.authz: the same as `accord-authz` (accord.authz.main)."""

from __future__ import annotations

from accord.authz.main import main

if __name__ == "__main__":
    main()
