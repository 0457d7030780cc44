"""Load a folder of workflow files into a :class:`WorkflowSet`, or say exactly what is wrong.

Every error names the file, the line and the reason, the way a compiler does, so that
``accord workflows validate``, CI and the reload log point at the line to fix:

- YAML syntax errors (PyYAML's marks), duplicate keys (which YAML would silently
  overwrite), a file that is not one mapping;
- schema errors: a pydantic error's ``loc`` is mapped back to the YAML node it came
  from (the file is composed with ``yaml.compose``-style nodes that keep their marks);
- duplicate workflow ids across files, duplicate task ids in a workflow;
- semantic checks through injected :class:`Checks` (expressions, targets, entitlements,
  mail templates), so this module depends on no other helper; plus ``vars.<task>``
  references that must name an earlier task.

All errors of all files are collected and raised together, sorted, in one
:class:`WorkflowErrors`: fixing a folder should not take one run per mistake.

Each workflow gets a ``version``: the first 12 hex digits of the sha256 of its canonical
JSON (defaults filled in, keys sorted, durations in canonical form), so comments, key
order and spelling a default out do not change it, and any change of meaning does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from accord.orchestrator.workflows.definitions import (
    TASK_KINDS,
    AddGroup,
    CreateAccounts,
    DeleteAccounts,
    DisableAccounts,
    EnableAccounts,
    RemoveGroup,
    RequestEntitlement,
    RevokeEntitlement,
    SendEmail,
    UpdateAccounts,
    Workflow,
)

__all__ = [
    "SUFFIXES",
    "Checks",
    "LoadedWorkflow",
    "WorkflowError",
    "WorkflowErrors",
    "WorkflowSet",
    "canonical_json",
    "files_digest",
    "kept_definition",
    "load_files",
    "load_folder",
    "read_folder",
    "semantic_errors",
    "workflow_version",
]

SUFFIXES = (".yaml", ".yml")
_VARS = re.compile(r"\bvars\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_ACCOUNT_TASKS = (CreateAccounts, UpdateAccounts, EnableAccounts, DisableAccounts, DeleteAccounts)

Loc = tuple[str | int, ...]
#: Loc elements pydantic adds for a union member: never a key of the file.
_TAGS = frozenset((*TASK_KINDS, "str", "int", "bool"))
_NOISE_WHEN_DEEPER = frozenset(("literal_error", "too_short"))


class WorkflowError(NamedTuple):
    """One problem: where (file, 1-based line) and why. Sorts by file, then line."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class WorkflowErrors(Exception):
    """A workflow folder that cannot be put in force; ``errors`` says every reason."""

    def __init__(self, errors: list[WorkflowError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True)
class Checks:
    """What the platform knows, injected so the loader depends on no other module.

    ``expression`` compiles an expression and returns an error message, or None if it
    is good. A set of names (``targets``, ``entitlements``, ``templates``) is checked;
    None leaves those names unchecked (e.g. ``validate`` without a running platform).
    """

    expression: Callable[[str], str | None]
    targets: set[str] | None = None
    entitlements: set[str] | None = None
    templates: set[str] | None = None


@dataclass(frozen=True)
class LoadedWorkflow:
    """A workflow as loaded: its definition, its content version and the file it came from."""

    definition: Workflow
    version: str
    source: str

    @property
    def id(self) -> str:
        """The workflow's id."""
        return self.definition.id


@dataclass(frozen=True)
class WorkflowSet:
    """The workflows of one folder, by id; ``digest`` identifies the files' content."""

    workflows: Mapping[str, LoadedWorkflow] = field(default_factory=dict)
    digest: str = ""

    def __getitem__(self, workflow_id: str) -> LoadedWorkflow:
        return self.workflows[workflow_id]

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self.workflows

    def __iter__(self) -> Iterator[LoadedWorkflow]:
        return iter(self.workflows.values())

    def __len__(self) -> int:
        return len(self.workflows)

    def enabled(self) -> list[LoadedWorkflow]:
        """The workflows that are enabled, by id."""
        return [loaded for loaded in self if loaded.definition.enabled]

    def versions(self) -> dict[str, str]:
        """Workflow id -> version, e.g. for a status endpoint."""
        return {loaded.id: loaded.version for loaded in self}


def canonical_json(workflow: Workflow) -> str:
    """The definition as canonical JSON: defaults filled in, keys sorted, no spaces."""
    return json.dumps(
        workflow.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def workflow_version(workflow: Workflow) -> str:
    """The content version: sha256 of the canonical JSON, first 12 hex digits."""
    return hashlib.sha256(canonical_json(workflow).encode()).hexdigest()[:12]


def kept_definition(text: str, version: str) -> Workflow | None:
    """A definition kept as its canonical JSON (the workflow_versions table), read back.

    None when it no longer reads as the definition of ``version``: an upgrade changed the
    definition models so that it fails validation or hashes to another version. The run
    is then treated as if its version had never been kept.
    """
    try:
        workflow = Workflow.model_validate_json(text)
    except ValidationError:
        return None
    return workflow if workflow_version(workflow) == version else None


def files_digest(files: Mapping[str, bytes]) -> str:
    """The sha256 of a folder's workflow files (names and bytes): what change detection compares."""
    digest = hashlib.sha256()
    for name in sorted(files):
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(len(files[name]).to_bytes(8, "big") + files[name])
    return digest.hexdigest()


def read_folder(folder: Path) -> dict[str, bytes]:
    """The workflow files of a folder (not its subfolders), path -> bytes.

    :raises WorkflowErrors: if the folder does not exist or a file cannot be read.
    """
    if not folder.is_dir():
        raise WorkflowErrors([WorkflowError(str(folder), 0, "not a directory")])
    files: dict[str, bytes] = {}
    errors: list[WorkflowError] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        try:
            files[str(path)] = path.read_bytes()
        except OSError as error:
            errors.append(WorkflowError(str(path), 0, f"cannot be read: {error.strerror}"))
    if errors:
        raise WorkflowErrors(errors)
    return files


def load_folder(folder: Path, checks: Checks) -> WorkflowSet:
    """Read and load every ``*.yaml``/``*.yml`` file of ``folder``.

    :raises WorkflowErrors: with every error of every file.
    """
    return load_files(read_folder(folder), checks)


def load_files(files: Mapping[str, bytes | str], checks: Checks) -> WorkflowSet:
    """Load workflow files given as name -> content (pure: no file system).

    :raises WorkflowErrors: with every error of every file, sorted.
    """
    raw = {
        name: content if isinstance(content, bytes) else content.encode()
        for name, content in files.items()
    }
    errors: list[WorkflowError] = []
    loaded: dict[str, LoadedWorkflow] = {}
    id_nodes: dict[str, yaml.Node] = {}
    for name in sorted(raw):
        parsed = _load_file(name, raw[name], checks, errors)
        if parsed is None:
            continue
        workflow, root = parsed
        if workflow.id in loaded:
            first = loaded[workflow.id].source
            first_line = _line(id_nodes[workflow.id], ("id",))
            errors.append(
                WorkflowError(
                    name,
                    _line(root, ("id",)),
                    f"id: workflow id {workflow.id!r} is already used by {first}:{first_line}",
                )
            )
            continue
        loaded[workflow.id] = LoadedWorkflow(workflow, workflow_version(workflow), name)
        id_nodes[workflow.id] = root
    if errors:
        raise WorkflowErrors(errors)
    return WorkflowSet(dict(sorted(loaded.items())), files_digest(raw))


# One file ---------------------------------------------------------------------------------


def _load_file(
    name: str, content: bytes, checks: Checks, errors: list[WorkflowError]
) -> tuple[Workflow, yaml.Node] | None:
    def fail(line: int, message: str) -> None:
        errors.append(WorkflowError(name, line, message))

    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        fail(content[: error.start].count(b"\n") + 1, "the file is not UTF-8")
        return None
    try:
        root, data = _parse_yaml(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        reason = " ".join(part for part in (error.context, error.problem) if part)
        fail(mark.line + 1 if mark else 1, f"YAML syntax: {reason}")
        return None
    except yaml.YAMLError as error:
        fail(1, f"YAML syntax: {error}")
        return None
    if root is None:
        fail(1, "the file is empty: a workflow file holds one workflow")
        return None
    duplicates = list(_duplicate_keys(root))
    for line, message in duplicates:
        fail(line, message)
    if not isinstance(data, dict):
        fail(root.start_mark.line + 1, "a workflow file holds one mapping (id, trigger, tasks...)")
        return None
    try:
        workflow = Workflow.model_validate(data)
    except ValidationError as error:
        for line, message in _schema_errors(root, error):
            fail(line, message)
        return None
    for loc, message in semantic_errors(workflow, checks):
        fail(_line(root, loc), f"{_loc_text(loc)}: {message}")
    return (workflow, root) if not duplicates else None


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (with marks) and the data it constructs, from one parse."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return root, data


def _duplicate_keys(node: yaml.Node) -> Iterator[tuple[int, str]]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield (
                        key.start_mark.line + 1,
                        f"{key.value}: duplicate key (first on line {seen[key.value]})",
                    )
                else:
                    seen[key.value] = key.start_mark.line + 1
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item)


# Errors to lines ----------------------------------------------------------------------------


def _node_at(root: yaml.Node, loc: Loc) -> yaml.Node:
    """The deepest node ``loc`` reaches; for a mapping key, the key's node (its line).

    Elements the YAML does not hold (union tags such as ``SendEmail`` or
    ``tuple[...]``, a missing key) are skipped: the error then points at the nearest
    node that exists, e.g. the task that lacks a required key.
    """
    node = root
    for element in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(element):
                    node = value if isinstance(value, yaml.CollectionNode) else key
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(element, int)
            and 0 <= element < len(node.value)
        ):
            node = node.value[element]
    return node


def _line(root: yaml.Node, loc: Loc) -> int:
    return _node_at(root, loc).start_mark.line + 1


def _is_path(element: str | int) -> bool:
    """Whether a loc element is a key or index of the file, not a pydantic union tag."""
    if isinstance(element, int):
        return True
    return element not in _TAGS and bool(re.fullmatch(r"[a-z_][a-z0-9_]*", element))


def _loc_text(loc: Loc) -> str:
    text = ""
    for element in loc:
        if not _is_path(element):
            continue
        text += f"[{element}]" if isinstance(element, int) else f".{element}" if text else element
    return text or "(workflow)"


def _schema_errors(root: yaml.Node, error: ValidationError) -> list[tuple[int, str]]:
    """One message per place: a union's branches that failed at the same node are joined;
    a branch that wanted a literal (``all``) is dropped when another branch got further
    into the value (the author clearly meant the list), and so is pydantic's "too short"
    for a list whose items failed (it counts only the valid ones)."""
    mapped = [_schema_error(root, detail) for detail in error.errors()]
    paths = [loc for loc, _, _ in mapped]
    by_place: dict[tuple[int, str], list[str]] = {}
    for loc, kind, message in mapped:
        deeper = any(len(other) > len(loc) and other[: len(loc)] == loc for other in paths)
        if kind in _NOISE_WHEN_DEEPER and deeper:
            continue
        key = (_line(root, loc), _loc_text(loc))
        if message not in by_place.setdefault(key, []):
            by_place[key].append(message)
    return [
        (line, f"{where}: {'; or '.join(messages)}") for (line, where), messages in by_place.items()
    ]


def _schema_error(root: yaml.Node, detail: Any) -> tuple[Loc, str, str]:
    loc: Loc = tuple(element for element in detail["loc"] if _is_path(element))
    kind = detail["type"]
    message = detail["msg"]
    if kind in ("union_tag_invalid", "union_tag_not_found") and loc[:1] == ("tasks",):
        tag = detail.get("ctx", {}).get("tag")
        message = (
            f"unknown task {tag!r}" if tag is not None else "a task needs task: <kind>"
        ) + f"; the library has {', '.join(TASK_KINDS)}"
        loc = (*loc, "task") if tag is not None else loc
    elif kind == "duplicate_task_id":
        loc = ("tasks", detail["ctx"]["index"], "id")
    elif kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = f"missing key {loc[-1]!r}" if loc else message
        loc = loc[:-1]
    return loc, kind, message


# Semantic checks ---------------------------------------------------------------------------


def semantic_errors(workflow: Workflow, checks: Checks) -> Iterator[tuple[Loc, str]]:
    """What the platform refuses in a well-formed workflow, as (loc, reason)."""
    if workflow.scope is not None and (reason := checks.expression(workflow.scope)):
        yield ("scope",), f"bad expression: {reason}"
    earlier: set[str] = set()
    for index, task in enumerate(workflow.tasks):
        at: Loc = ("tasks", index)
        if task.when is not None:
            if reason := checks.expression(task.when):
                yield (*at, "when"), f"bad expression: {reason}"
            for name in _VARS.findall(task.when):
                if name not in earlier:
                    yield (*at, "when"), f"vars.{name} is not the id of an earlier task"
        yield from _name_errors(task, at, checks)
        earlier.add(task.id)


def _unknown(kind: str, name: str, known: set[str]) -> str:
    listed = ", ".join(sorted(known)) or "none"
    return f"unknown {kind} {name!r} (known: {listed})"


def _name_errors(task: Any, at: Loc, checks: Checks) -> Iterator[tuple[Loc, str]]:
    if checks.targets is not None:
        if isinstance(task, _ACCOUNT_TASKS) and not isinstance(task.targets, str):
            for position, target in enumerate(task.targets):
                if target not in checks.targets:
                    yield (*at, "targets", position), _unknown("target", target, checks.targets)
        if isinstance(task, AddGroup | RemoveGroup) and task.target not in checks.targets:
            yield (*at, "target"), _unknown("target", task.target, checks.targets)
    if checks.entitlements is not None:
        if isinstance(task, RequestEntitlement) and task.entitlement not in checks.entitlements:
            yield (
                (*at, "entitlement"),
                _unknown("entitlement", task.entitlement, checks.entitlements),
            )
        if isinstance(task, RevokeEntitlement) and not isinstance(task.entitlements, str):
            for position, name in enumerate(task.entitlements):
                if name not in checks.entitlements:
                    yield (
                        (*at, "entitlements", position),
                        _unknown("entitlement", name, checks.entitlements),
                    )
    if (
        checks.templates is not None
        and isinstance(task, SendEmail)
        and task.template is not None
        and task.template not in checks.templates
    ):
        yield (*at, "template"), _unknown("mail template", task.template, checks.templates)
