"""The published JSON Schema of workflow files, generated from the definition models.

Editors check workflow files against it with a first line such as::

    # yaml-language-server: $schema=../workflow.schema.json

The schema is generated, never edited: ``workflow.schema.json`` beside this module is
what :func:`workflow_schema` returns, and a unit test fails when the two differ. After
changing :mod:`accord.orchestrator.workflows.definitions`, regenerate it with::

    uv run --frozen python -m accord.orchestrator.workflows.schema

It describes shapes only; what needs the running platform (known targets, entitlements,
templates, expressions that compile) is checked by the loader.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from accord.orchestrator.workflows.definitions import Workflow
from accord.orchestrator.workflows.durations import Duration

__all__ = ["SCHEMA_ID", "SCHEMA_PATH", "main", "schema_text", "workflow_schema"]

SCHEMA_ID = "urn:accord:workflows:workflow:v1"
SCHEMA_PATH = Path(__file__).with_name("workflow.schema.json")
REGENERATE = "uv run --frozen python -m accord.orchestrator.workflows.schema"


class _WorkflowJsonSchema(GenerateJsonSchema):
    """Defaults as a file writes them: a duration as its ISO text, not its fields."""

    def encode_default(self, dft: Any) -> Any:
        return str(dft) if isinstance(dft, Duration) else super().encode_default(dft)


def workflow_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of one workflow file."""
    schema = Workflow.model_json_schema(mode="validation", schema_generator=_WorkflowJsonSchema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "Accord lifecycle workflow",
        "description": (
            "One lifecycle workflow (joiner, mover, leaver or custom): its trigger, the"
            " identities it is for (scope) and its tasks in order. Generated from"
            " accord.orchestrator.workflows.definitions; do not edit."
        ),
    }


def schema_text() -> str:
    """The schema file's exact content."""
    return json.dumps(workflow_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema file, or with ``--check`` say whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    text = schema_text()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
