"""Read a policy folder from disk: the only module of the domain that does I/O.

A policy folder holds ``*.cedar`` files (loaded in name order) and optionally a
Cedar schema, either ``schema.cedarschema`` (Cedar schema syntax) or
``schema.cedarschema.json`` (its JSON form), not both. It may also hold the
entitlement catalogue, ``catalogue.yaml``: this module only reads its bytes (so
they count in the folder's version); :mod:`accord.authz.catalogue` parses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from accord.authz.domain.policy_set import (
    LoadedPolicies,
    PolicyError,
    PolicySource,
    compile_policies,
)

POLICY_GLOB = "*.cedar"
SCHEMA_FILES = ("schema.cedarschema", "schema.cedarschema.json")
CATALOGUE_FILE = "catalogue.yaml"


def default_policy_dir() -> Path:
    """The policy folder shipped with the service (``accord/authz/policies``)."""
    return Path(__file__).resolve().parent.parent / "policies"


@dataclass(frozen=True, slots=True)
class PolicyFiles:
    """The bytes of a policy folder's files, read once, by file name.

    ``contents`` holds the ``*.cedar`` files, the schema and the catalogue (those
    present); ``version`` is the sha256 (hex) of their names and contents, so it
    changes exactly when one of them is edited, added, removed or renamed.
    """

    folder: Path
    contents: Mapping[str, bytes] = field(repr=False)
    version: str

    @property
    def policy_names(self) -> list[str]:
        """The names of the ``*.cedar`` files, in load order."""
        return sorted(name for name in self.contents if name.endswith(".cedar"))

    def text(self, name: str) -> str | None:
        """The text of file ``name`` (newlines normalised), or None if it is absent.

        :raises PolicyError: if the file is not UTF-8.
        """
        data = self.contents.get(name)
        if data is None:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(str(self.folder / name), None, f"not UTF-8 text: {exc}") from exc
        return text.replace("\r\n", "\n").replace("\r", "\n")

    def sources(self) -> list[PolicySource]:
        """The ``*.cedar`` files as policy sources, in name order."""
        return [
            PolicySource(path=str(self.folder / name), text=self.text(name) or "")
            for name in self.policy_names
        ]

    def schema_name(self) -> str | None:
        """The name of the schema file, if there is one.

        :raises PolicyError: if both schema forms are present.
        """
        present = [name for name in SCHEMA_FILES if name in self.contents]
        if len(present) > 1:
            raise PolicyError(
                str(self.folder), None, f"both {' and '.join(SCHEMA_FILES)} present; keep one"
            )
        return present[0] if present else None

    def compile(self) -> LoadedPolicies:
        """Check and parse the policies (errors name the file, line and reason).

        :raises PolicyError: if a file is not UTF-8 or a policy or the schema is invalid.
        """
        sources = self.sources()
        schema_name = self.schema_name()
        schema = None if schema_name is None else self.text(schema_name)
        schema_path = self.folder / schema_name if schema_name else self.folder
        return compile_policies(sources, schema, schema_path=str(schema_path))


def _digest(contents: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(contents):
        data = contents[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc


def read_policy_files(path: Path) -> PolicyFiles:
    """Read the bytes of the policy folder's files (``*.cedar``, schema, catalogue).

    Symbolic links are followed (a Kubernetes ConfigMap mounts its files as links).

    :raises NotADirectoryError: if ``path`` is not a directory.
    :raises PolicyError: if a file cannot be read.
    """
    if not path.is_dir():
        raise NotADirectoryError(f"policy folder not found: {path}")
    names = [file.name for file in sorted(path.glob(POLICY_GLOB)) if file.is_file()]
    names += [name for name in (*SCHEMA_FILES, CATALOGUE_FILE) if (path / name).is_file()]
    contents = {name: _read_bytes(path / name) for name in names}
    return PolicyFiles(path, MappingProxyType(contents), _digest(contents))


def read_policy_dir(path: Path) -> tuple[list[PolicySource], str | None]:
    """The ``*.cedar`` files of ``path`` (sorted by name) and its schema text, if any.

    :raises NotADirectoryError: if ``path`` is not a directory.
    :raises PolicyError: if a file is not UTF-8 or there are two schema files.
    """
    files = read_policy_files(path)
    sources = files.sources()
    schema_name = files.schema_name()
    return sources, None if schema_name is None else files.text(schema_name)


def load_policy_dir(path: Path) -> LoadedPolicies:
    """Read and compile the policy folder at ``path`` (errors name the schema file).

    :raises NotADirectoryError: if ``path`` is not a directory.
    :raises PolicyError: if a file cannot be read as text or a policy is invalid.
    """
    return read_policy_files(path).compile()
