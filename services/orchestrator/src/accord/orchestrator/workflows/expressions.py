"""The one expression language of workflows: CEL for scopes, task conditions and birthright rules.

Why CEL: it is a standard (Kubernetes admission policies and cloud IAM conditions use it), it is
side-effect free and always terminates, and an editor or a reviewer already knows it. Why
`cel-expr-python`: it binds the reference implementation (cel-cpp), type-checks at compile time
(an undeclared variable or a bad operator is refused with its line and column) and evaluates
a typical scope in about 7 µs; docs/workflows-expressions.md has the measurements.

Expressions see `identity` (the identity's profile as a map), `previous` (the profile before a
mover's change, or null), `changed` (names of the changed fields), `now` (a timestamp) and `vars`
(variables from earlier tasks). Absent optional fields are absent keys, not nulls, so
`has(identity.leave_date)` tells whether the identity has one; reading an absent key is an
evaluation error, as CEL specifies.

Dates are strings in the context: the binding cannot pass a timestamp nested in a map, and a
day (`hire_date`) is not an instant anyway, its instant depends on the person's time zone. A
`date` becomes "YYYY-MM-DD" (compare days as strings: `identity.hire_date <= "2026-12-31"`), a
`datetime` an RFC 3339 UTC string ("2026-12-05T08:00:00Z") that `timestamp()` turns into a CEL
timestamp: `timestamp(identity.leave_date) < now`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings

IDENTITY_FIELDS = frozenset(
    {
        "user_id",
        "user_name",
        "given_name",
        "family_name",
        "display_name",
        "email",
        "title",
        "department",
        "employee_number",
        "cost_center",
        "manager_id",
        "active",
        "employee_type",
        "hire_date",
        "leave_date",
        "time_zone",
        "attributes",
    }
)
"""Fields of `identity` and `previous`; any other name is refused at compile time (a typo)."""

_T = cel.Type
TypeIsh = Any
"""A CEL type (`cel.Type`) or a Python one: bool, int, float, str, bytes, dict, list,
datetime.datetime (a timestamp), datetime.timedelta (a duration), object or Any (dyn)."""

STANDARD_VARIABLES: Mapping[str, TypeIsh] = {
    "identity": dict,
    "previous": object,
    "changed": list[str],
    "now": dt.datetime,
    "vars": dict,
}
"""What scopes and task conditions see. `previous` is dyn so that it may be null."""

_PYTHON_TYPES: Mapping[Any, Any] = {
    bool: _T.BOOL,
    int: _T.INT,
    float: _T.DOUBLE,
    str: _T.STRING,
    bytes: _T.BYTES,
    dict: _T.Map(_T.STRING, _T.DYN),
    list: _T.List(_T.DYN),
    list[str]: _T.List(_T.STRING),
    dt.datetime: _T.TIMESTAMP,
    dt.timedelta: _T.DURATION,
    object: _T.DYN,
    Any: _T.DYN,
}


class ExpressionError(ValueError):
    """A refused or failed expression, with its 1-based position when the library gives one."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True, eq=False)
class Expression:
    """A compiled expression; immutable and shared (compile_expression caches by text)."""

    text: str
    result_type: str
    """The CEL type the checker inferred: "BOOL", "STRING", "DYN" (known only when run)..."""
    _program: Any

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value, as plain Python; an evaluation error (a missing key, no matching
        overload, an undeclared variable absent from the context) is an ExpressionError."""
        try:
            value = self._program.eval(data=context)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ExpressionError(_reason(str(exc))) from exc
        if value.type() == _T.ERROR:
            raise ExpressionError(_reason(str(value.value())))
        return value.plain_value()

    def holds(self, context: Mapping[str, Any]) -> bool:
        """Whether a condition holds.

        An evaluation error counts as not holding (False): a missing attribute means the
        identity does not meet the condition, as a birthright `when` on an absent attribute
        never matches and as cloud IAM conditions do. So does a negation over it: with no
        `site`, `!(identity.attributes.site == "FR")` is False too; write
        `!has(identity.attributes.site) || identity.attributes.site != "FR"`.
        A non-bool result raises ExpressionError: that is a bug of the definition, not of
        the data, and it would be wrong for every identity.
        """
        try:
            value = self.evaluate(context)
        except ExpressionError:
            return False
        if not isinstance(value, bool):
            raise ExpressionError(f"a condition must be a bool, this one gave {value!r}")
        return value


def compile_expression(text: str, *, variables: Mapping[str, TypeIsh] | None = None) -> Expression:
    """Compile (parse and type-check) an expression, cached by text and declarations.

    `variables` replaces STANDARD_VARIABLES (extend with `{**STANDARD_VARIABLES, ...}`), so a
    birthright rule can declare only `identity` and refuse `now` at load. Raises
    ExpressionError for a syntax error, an undeclared variable or function, an operator
    applied to types that never fit, or an unknown field of `identity` / `previous`.
    """
    if variables is None:
        return _compile(text, _STANDARD_SIGNATURE)
    return _compile(text, _signature(variables))


def compile_condition(text: str, *, variables: Mapping[str, TypeIsh] | None = None) -> Expression:
    """compile_expression, refusing an expression whose checked type cannot be a bool."""
    expression = compile_expression(text, variables=variables)
    if expression.result_type not in {"BOOL", "DYN"}:
        raise ExpressionError(f"a condition must be a bool, this one is {expression.result_type}")
    return expression


def identity_context(
    profile: Mapping[str, Any] | Any,
    *,
    previous: Mapping[str, Any] | Any | None = None,
    changed: Sequence[str] = (),
    now: dt.datetime | None = None,
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context of an expression about one identity.

    `profile` and `previous` are mappings or pydantic models (a Profile, a UserSnapshot). None
    values are dropped (so `has()` tests presence), dates become strings (see the module
    docstring), `now` (default: the current time) must be timezone-aware.
    """
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return {
        "identity": _profile(profile),
        "previous": None if previous is None else _profile(previous),
        "changed": sorted(changed),
        "now": moment.astimezone(dt.UTC),
        "vars": _plain(dict(variables or {})),
    }


_TYPES_BY_NAME: dict[str, Any] = {}
_LOCATION = re.compile(r"<input>:(\d+):(\d+): ([^\n]*)")
_STATUS = re.compile(r"^[A-Z_]+: (ERROR: )?")
_FIELD = re.compile(r"(?<![\w.])(identity|previous)\s*\.\s*([A-Za-z_]\w*)")
_STRING = re.compile(
    r"""(?:[rRbB]{0,2})('''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""", re.S
)


def _signature(variables: Mapping[str, TypeIsh]) -> tuple[tuple[str, str], ...]:
    """A hashable key for declarations (cel.Type is unhashable): names and type names."""
    types = {name: _cel_type(kind) for name, kind in variables.items()}
    for cel_type in types.values():
        _TYPES_BY_NAME.setdefault(cel_type.name(), cel_type)
    return tuple(sorted((name, cel_type.name()) for name, cel_type in types.items()))


@lru_cache(maxsize=1024)
def _environment(signature: tuple[tuple[str, str], ...]) -> Any:
    declarations = {name: _TYPES_BY_NAME[kind] for name, kind in signature}
    return cel.NewEnv(variables=declarations, extensions=[ext_strings.ExtStrings()])


@lru_cache(maxsize=4096)
def _compile(text: str, signature: tuple[tuple[str, str], ...]) -> Expression:
    try:
        program = _environment(signature).compile(text)
    except RuntimeError as exc:
        message, line, column = _first_error(str(exc))
        raise ExpressionError(message, line, column) from exc
    names = {name for name, _ in signature}
    _check_fields(text, names & {"identity", "previous"})
    return Expression(text=text, result_type=program.return_type().name(), _program=program)


def _first_error(raw: str) -> tuple[str, int | None, int | None]:
    found = _LOCATION.search(raw)
    if found is None:
        return _reason(raw), None, None
    return found.group(3).strip(), int(found.group(1)), int(found.group(2))


def _reason(raw: str) -> str:
    return _STATUS.sub("", raw.strip()).removesuffix("[INVALID_ARGUMENT]").strip()


def _check_fields(text: str, roots: set[str]) -> None:
    """Refuse `identity.titel`: the identity is a map, so the checker cannot see typos."""
    blanked = _STRING.sub(lambda m: " " * len(m.group(0)), text)
    for found in _FIELD.finditer(blanked):
        root, field = found.group(1), found.group(2)
        if root in roots and field not in IDENTITY_FIELDS:
            line = blanked.count("\n", 0, found.start(2)) + 1
            column = found.start(2) - (blanked.rfind("\n", 0, found.start(2)) + 1) + 1
            raise ExpressionError(f"{root} has no field {field!r}", line, column)


def _cel_type(kind: TypeIsh) -> Any:
    if isinstance(kind, cel.Type):
        return kind
    try:
        return _PYTHON_TYPES[kind]
    except (KeyError, TypeError):
        raise TypeError(f"no CEL type for {kind!r}") from None


def _profile(profile: Mapping[str, Any] | Any) -> dict[str, Any]:
    fields = profile if isinstance(profile, Mapping) else profile.model_dump()
    return {k: _plain(v) for k, v in fields.items() if v is not None}


def _plain(value: Any) -> Any:
    """A value the binding accepts anywhere: no nested timestamps, no None in maps."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


_STANDARD_SIGNATURE = _signature(STANDARD_VARIABLES)
