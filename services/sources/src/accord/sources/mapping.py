"""A source row becomes a key, a status and profile values, through the source's mappings.

A mapping is a column name (`given_name: first_name`) or a CEL expression over `row`, the
row as a map of strings (`user_name: lower(row.first) + "." + lower(row.last)`): the same
language as the workflows, so an IAM team learns one. A text is a column name when it looks
like one (a letter, then letters, digits, `_`, `-` or spaces), else an expression; a constant
is written as CEL (`"employee"`). Expressions are compiled once per source, when the mapper
is built, so a typo fails the configuration, not 100,000 rows. `lower` and `upper` are added
to CEL's string extensions because `lowerAscii` would leave `Émile` capitalised.

A row whose mapping fails or whose values are no valid `Profile` (a malformed e-mail, a hire
date that is no date) is reported as a `RowProblem` and skipped; the others go on. An empty
value (an empty cell) means "not set". Values are checked by `Profile` itself, so what the
diff compares is exactly what the events will carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings
from pydantic import TypeAdapter, ValidationError

from accord.events.catalogue import Profile
from accord.events.catalogue.base import Identifier
from accord.sources.config import ATTRIBUTE_PREFIX, Source
from accord.sources.csv_reader import SourceRow
from accord.sources.problems import ProblemKind, RowProblem

_COLUMN = re.compile(r"^[A-Za-z][A-Za-z0-9_ -]*$")
_CEL_WORDS = frozenset({"true", "false", "null", "row"})
_T = cel.Type
_FUNCTIONS = [
    cel.FunctionDecl("lower", [cel.Overload("lower_str", _T.STRING, [_T.STRING], impl=str.lower)]),
    cel.FunctionDecl("upper", [cel.Overload("upper_str", _T.STRING, [_T.STRING], impl=str.upper)]),
]


class MappingError(ValueError):
    """A mapping that cannot be compiled or a column the export lacks: the source's fault."""


@dataclass(frozen=True, slots=True)
class MappedRow:
    """One row as the diff sees it: values aligned with `RowMapper.fields`."""

    key: str
    line: int
    user_id: str
    active: bool
    values: tuple[str | None, ...]


_USER_ID: TypeAdapter[str] = TypeAdapter(Identifier)
Getter = Callable[[Mapping[str, str]], Any]


def _column(name: str) -> Getter:
    return lambda row: row[name]


def _expression(source: str, field: str, text: str) -> Getter:
    environment = cel.NewEnv(
        variables={"row": _T.Map(_T.STRING, _T.STRING)},
        extensions=[ext_strings.ExtStrings()],
        functions=_FUNCTIONS,
    )
    try:
        program = environment.compile(text)
    except RuntimeError as error:
        raise MappingError(f"source {source!r}, {field}: {_reason(str(error))}") from None

    def evaluate(row: Mapping[str, str]) -> Any:
        value = program.eval(data={"row": row})
        if value.type() == _T.ERROR:
            raise ValueError(_reason(str(value.value())))
        return value.plain_value()

    return evaluate


def _reason(raw: str) -> str:
    text = raw.strip().removesuffix("[INVALID_ARGUMENT]").strip()
    return re.sub(r"^[A-Z_]+: (ERROR: )?", "", text).split("\n |")[0].strip()


def _getter(source: str, field: str, text: str) -> tuple[Getter, str | None]:
    """The getter, and the column it reads when the text is a plain column name."""
    text = text.strip()
    if _COLUMN.match(text) and text not in _CEL_WORDS:
        return _column(text), text
    return _expression(source, field, text), None


class RowMapper:
    """The compiled mappings of one source."""

    def __init__(self, source: Source) -> None:
        self.source = source.name
        self.key_column = source.key
        mappings = dict(source.mappings)
        user_id = mappings.pop("user_id", None)
        #: Mapped field names in a fixed order: the diff's state stores values in this order.
        self.fields: tuple[str, ...] = tuple(sorted(mappings))
        compiled = [_getter(source.name, name, mappings[name]) for name in self.fields]
        self._getters = [getter for getter, _ in compiled]
        self._columns = {column for _, column in compiled if column is not None} | {source.key}
        self._user_id = _getter(source.name, "user_id", user_id) if user_id else None
        if self._user_id is not None and self._user_id[1] is not None:
            self._columns.add(self._user_id[1])
        self._status = self._status_rule(source)

    def _status_rule(self, source: Source) -> Callable[[Mapping[str, str]], bool]:
        rule = source.status
        if rule is None:
            return lambda row: True
        if rule.column is not None:
            column, active = rule.column, {value.casefold() for value in rule.active_values}
            self._columns.add(column)
            return lambda row: row[column].strip().casefold() in active
        evaluate = _expression(source.name, "status", rule.expression or "")

        def holds(row: Mapping[str, str]) -> bool:
            value = evaluate(row)
            if not isinstance(value, bool):
                raise ValueError(f"status must be a bool, it gave {value!r}")
            return value

        return holds

    def check_columns(self, columns: Iterable[str]) -> None:
        """Refuse an export that lacks a column the mappings read: every row would fail."""
        missing = sorted(self._columns - set(columns))
        if missing:
            raise MappingError(f"source {self.source!r}: no column {', '.join(missing)}")

    def map(self, row: SourceRow) -> MappedRow | RowProblem:
        """The row's key, user id, status and values, or why it cannot be used."""
        key = row.values.get(self.key_column, "").strip()
        if not key:
            return RowProblem(ProblemKind.UNMAPPABLE, row.line, f"empty key {self.key_column}")
        failing = "status"
        try:
            raw: list[str | None] = []
            for name, getter in zip(self.fields, self._getters, strict=True):
                failing = name
                raw.append(_text(getter(row.values)))
            failing = "status"
            active = self._status(row.values)
            failing = "user_id"
            user_id = f"{self.source}:{key}"
            if self._user_id is not None:
                user_id = _text(self._user_id[0](row.values)) or user_id
        except (KeyError, ValueError, TypeError) as error:
            return RowProblem(ProblemKind.UNMAPPABLE, row.line, f"{failing}: {error}", key)
        try:
            _USER_ID.validate_python(user_id)
            values = self._validated(dict(zip(self.fields, raw, strict=True)), active)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "user_id"
            return RowProblem(ProblemKind.UNMAPPABLE, row.line, f"{where}: {problem['msg']}", key)
        return MappedRow(key, row.line, user_id, active, values)

    def map_all(self, rows: Iterable[SourceRow], problems: list[RowProblem]) -> Iterator[MappedRow]:
        """Map a stream of rows, appending the bad ones' problems to `problems`."""
        for row in rows:
            mapped = self.map(row)
            if isinstance(mapped, RowProblem):
                problems.append(mapped)
            else:
                yield mapped

    def _validated(self, fields: dict[str, str | None], active: bool) -> tuple[str | None, ...]:
        """Check the values as a Profile would take them; returns them as it holds them."""
        profile = to_profile(fields, user_name=fields["user_name"] or "", active=active)
        attributes = profile.attributes
        plain = profile.model_dump(include=set(self.fields))
        return tuple(
            attributes.get(name.removeprefix(ATTRIBUTE_PREFIX))
            if name.startswith(ATTRIBUTE_PREFIX)
            else plain[name]
            for name in self.fields
        )


def to_profile(fields: Mapping[str, str | None], *, user_name: str, active: bool) -> Profile:
    """A Profile from mapped fields (`attributes.<name>` into `attributes`), with the user name
    the run gave (it may carry a suffix) and the row's status."""
    data: dict[str, Any] = {"attributes": {}}
    for name, value in fields.items():
        if value is None:
            continue
        if name.startswith(ATTRIBUTE_PREFIX):
            data["attributes"][name.removeprefix(ATTRIBUTE_PREFIX)] = value
        else:
            data[name] = value
    data["user_name"] = user_name
    data["active"] = active
    return Profile.model_validate(data)


def _text(value: Any) -> str | None:
    """A mapped value as profile text: empty is unset; numbers are written out; a bool or a
    list is a mapping mistake (profile fields are text)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"a mapping gave {value!r}, not text")
    text = str(value).strip()
    return text or None
