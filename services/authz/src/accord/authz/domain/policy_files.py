"""Read a policy folder from disk: the only module of the domain that does I/O.

A policy folder holds ``*.cedar`` files (loaded in name order) and optionally a
Cedar schema, either ``schema.cedarschema`` (Cedar schema syntax) or
``schema.cedarschema.json`` (its JSON form), not both.
"""

from __future__ import annotations

from pathlib import Path

from accord.authz.domain.policy_set import (
    LoadedPolicies,
    PolicyError,
    PolicySource,
    compile_policies,
)

SCHEMA_FILES = ("schema.cedarschema", "schema.cedarschema.json")


def default_policy_dir() -> Path:
    """The policy folder shipped with the service (``accord/authz/policies``)."""
    return Path(__file__).resolve().parent.parent / "policies"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(str(path), None, f"not UTF-8 text: {exc}") from exc


def _schema_file(path: Path) -> Path | None:
    present = [path / name for name in SCHEMA_FILES if (path / name).is_file()]
    if len(present) > 1:
        raise PolicyError(str(path), None, f"both {' and '.join(SCHEMA_FILES)} present; keep one")
    return present[0] if present else None


def _read_dir(path: Path) -> tuple[list[PolicySource], Path | None, str | None]:
    if not path.is_dir():
        raise NotADirectoryError(f"policy folder not found: {path}")
    sources = [
        PolicySource(path=str(file), text=_read(file))
        for file in sorted(path.glob("*.cedar"))
        if file.is_file()
    ]
    schema_file = _schema_file(path)
    return sources, schema_file, None if schema_file is None else _read(schema_file)


def read_policy_dir(path: Path) -> tuple[list[PolicySource], str | None]:
    """The ``*.cedar`` files of ``path`` (sorted by name) and its schema text, if any.

    :raises NotADirectoryError: if ``path`` is not a directory.
    :raises PolicyError: if a file is not UTF-8 or there are two schema files.
    """
    sources, _, schema = _read_dir(path)
    return sources, schema


def load_policy_dir(path: Path) -> LoadedPolicies:
    """Read and compile the policy folder at ``path`` (errors name the schema file).

    :raises NotADirectoryError: if ``path`` is not a directory.
    :raises PolicyError: if a file cannot be read as text or a policy is invalid.
    """
    sources, schema_file, schema = _read_dir(path)
    return compile_policies(sources, schema, schema_path=str(schema_file or path))
