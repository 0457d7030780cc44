"""python -m accord.authn: the same as `accord-authn` (accord.authn.main)."""

from __future__ import annotations

from accord.authn.main import main

if __name__ == "__main__":
    main()
