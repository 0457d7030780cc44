"""python -m accord.provisioner: the same as `accord-provisioner` (accord.provisioner.main)."""

from __future__ import annotations

from accord.provisioner.main import main

if __name__ == "__main__":
    main()
