"""YAML configuration files validated by pydantic models, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from accord.events.errors import describe_validation_error

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M], error: type[Exception]) -> M:
    """Parse path as YAML into model; any problem raises `error` naming the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as problem:
        raise error(f"{path}: {problem.strerror}") from None
    except yaml.YAMLError as problem:
        # PyYAML explains over several lines with a caret drawing; keep one line.
        raise error(f"{path}: not valid YAML: {' '.join(str(problem).split())}") from None
    try:
        return model.model_validate(raw or {})
    except ValidationError as problem:
        raise error(f"{path}: {describe_validation_error(problem)}") from None
