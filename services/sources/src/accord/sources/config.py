"""The `sources.yaml` model: which systems of record Accord reads identities from, and how.

A source names its kind and the kind's options, the column that identifies a row (`key`), how
rows become profile fields (`mappings`), which rows are active (`status`), how a new row finds
an identity Accord already has (`correlation`), how much a run may take away before an
operator must approve it (`safety`), and when it runs (`schedule` or `watch`).

Every model forbids unknown keys: a misspelt option silently ignored would run a source with a
default nobody chose. `load_sources` prefixes every error with the source's name, since a
file holds many sources and "sources.3.mappings" tells an operator little.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from accord.events.catalogue import Profile
from accord.sources.scim_path import ScimPath, parse_path

#: Profile fields a mapping may set. `active` comes from `status`, `attributes` from
#: `attributes.<name>` mappings; `user_id` is no profile field but may be mapped (default:
#: `<source>:<key>`).
PROFILE_FIELDS = frozenset(Profile.model_fields) - {"active", "attributes"}
ATTRIBUTE_PREFIX = "attributes."
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: The fields correlation rules may match on: both identify a person across systems.
CorrelationField = Literal["employee_number", "email"]
SourceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
"""Lower-case, no spaces: a source's name becomes part of default user ids and of the
CloudEvents source (`urn:accord:source:<name>`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class CsvOptions(_Strict):
    """A CSV export: one file, or a folder where the newest matching file is the export."""

    path: Path
    """A file, or a folder of nightly exports (the newest one by modification time is read)."""
    pattern: str = "*.csv"
    """Which files of a folder are exports."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """The field separator (`;` is common in European exports, `\\t` for TSV)."""
    encoding: str = "utf-8"
    """The file's text encoding (`utf-8`, `cp1252`, `latin-1`...); a UTF-8 BOM is skipped."""
    header: bool = True
    """Whether the first line names the columns; without one, `columns` must."""
    columns: tuple[str, ...] = ()
    """Column names when the file has no header row."""

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @model_validator(mode="after")
    def _named_columns(self) -> CsvOptions:
        if not self.header and not self.columns:
            raise ValueError("a CSV without a header row needs `columns`")
        if self.header and self.columns:
            raise ValueError("`columns` is only for a CSV without a header row")
        return self


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
"""The name of an environment variable holding a secret: the secret itself never is in the
file (a `sources.yaml` is reviewed and versioned; a DSN or password in it would leak)."""
_QUALIFIED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_ATTRIBUTE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)$")


class SqlOptions(_Strict):
    """A query or a view on PostgreSQL, read through a server-side cursor in batches."""

    dsn_env: EnvName
    """Environment variable holding the database URL (`postgresql://reader:...@host/hr`)."""
    query: str | None = None
    """The SELECT that returns one row per person (column names become the row's fields)."""
    view: str | None = None
    """Or a view (or table) to read whole: `workers` or `hr.workers`."""
    prefetch: int = Field(default=500, ge=1, le=50_000)
    """Rows fetched per round trip: at most this many rows are in memory at once."""
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """Limit for connecting and for each batch (a stuck server fails the run, not hangs it)."""

    @field_validator("view")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not _QUALIFIED_NAME.match(value):
            raise ValueError(f"view {value!r} is no plain name (`workers` or `hr.workers`)")
        return value

    @model_validator(mode="after")
    def _query_or_view(self) -> SqlOptions:
        if (self.query is None) == (self.view is None):
            raise ValueError("sql needs either `query` or `view`")
        if self.query is not None and not self.query.strip():
            raise ValueError("`query` is empty")
        return self


class LdapOptions(_Strict):
    """A directory subtree as the source, read with paged searches (RFC 2696)."""

    url: str = Field(pattern=r"^ldaps?://[^/\s]+/?$")
    """`ldap://host:389` or `ldaps://host:636`."""
    bind_dn: str | None = None
    """Who to bind as; without it (and `password_env`) the search is anonymous."""
    password_env: EnvName | None = None
    """Environment variable holding the bind password."""
    base_dn: str = Field(min_length=1)
    """Where the search starts (`ou=people,dc=example,dc=org`)."""
    scope: Literal["base", "one", "sub"] = "sub"
    """The base entry only, its children, or the whole subtree."""
    filter: str = "(objectClass=person)"
    """An RFC 4515 filter: which entries are people of the source."""
    attributes: tuple[str, ...] = Field(min_length=1)
    """The attributes to read; each becomes a field of the row (absent ones are empty), with
    `dn` for the entry's DN. Named up front so the mappings can be checked before a run."""
    page_size: int = Field(default=500, ge=1, le=10_000)
    """Entries per page: at most this many entries are in memory at once."""
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """Limit for connecting and for each page."""

    @field_validator("filter")
    @classmethod
    def _parenthesised(cls, value: str) -> str:
        depth = 0
        for char in value:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                break
        if not (value.startswith("(") and value.endswith(")")) or depth != 0:
            raise ValueError(f"filter {value!r} is no parenthesised LDAP filter")
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _ATTRIBUTE.match(name):
                raise ValueError(f"{name!r} is no attribute name")
            if name.casefold() == "dn":
                raise ValueError("`dn` is always read: leave it out of `attributes`")
        folded = [name.casefold() for name in names]
        twice = sorted({name for name in names if folded.count(name.casefold()) > 1})
        if twice:
            raise ValueError(f"attributes named twice (without case): {', '.join(twice)}")
        return names

    @model_validator(mode="after")
    def _bind_with_password(self) -> LdapOptions:
        if (self.bind_dn is None) != (self.password_env is None):
            raise ValueError("`bind_dn` and `password_env` go together (neither: anonymous)")
        return self


class ScimOptions(_Strict):
    """Users pulled from another SCIM 2.0 service provider (RFC 7644), page by page."""

    url: str = Field(pattern=r"^https?://[^/?#@\s]+(/[^?#\s]*)?$")
    """The service provider's base URL (`https://scim.example.org/scim/v2`); `/Users` is read
    under it. No credentials, query or fragment in it: the token comes from `token_env`."""
    token_env: EnvName
    """Environment variable holding the bearer token."""
    filter: str | None = Field(default=None, min_length=1, max_length=4000)
    """A SCIM filter (`filter=`, RFC 7644 section 3.4.2.2): which users are people of the
    source, e.g. `active eq true and userType eq "Employee"`."""
    attributes: tuple[str, ...] | dict[str, str] = Field(min_length=1)
    """The attribute paths to read (see `scim_path`): a list (each row field is named as the
    path is written) or a map of field name -> path. `id` is always read."""
    page_size: int = Field(default=100, ge=1, le=1000)
    """Users asked for per page (`count`): at most one page is in memory at once."""
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """Limit for connecting and for each page."""

    @field_validator("filter")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("`filter` is empty (leave it out to read every user)")
        return value

    @field_validator("attributes")
    @classmethod
    def _paths(cls, value: tuple[str, ...] | dict[str, str]) -> tuple[str, ...] | dict[str, str]:
        fields = dict(value) if isinstance(value, dict) else {path: path for path in value}
        for field, path in fields.items():
            parse_path(path)  # its ValueError names the path
            if not field.strip():
                raise ValueError("a field name is empty")
        named = [name.casefold() for name in fields]
        if "id" in named:
            raise ValueError("`id` is always read: leave it out of `attributes`")
        twice = sorted({name for name in fields if named.count(name.casefold()) > 1})
        if twice:
            raise ValueError(f"fields named twice (without case): {', '.join(twice)}")
        return value

    @property
    def fields(self) -> dict[str, ScimPath]:
        """Each row field (but `id`) and the path it reads, in the configured order."""
        if isinstance(self.attributes, dict):
            return {field: parse_path(path) for field, path in self.attributes.items()}
        return {path: parse_path(path) for path in self.attributes}


class StatusRule(_Strict):
    """Which rows are active: a column and its active values, or a CEL condition on `row`.

    Without a status rule every row is active (an export of current staff only).
    """

    column: str | None = None
    active_values: tuple[str, ...] = ()
    """Values of `column` meaning active, compared without case (`A`, `Active`)."""
    expression: str | None = None
    """A CEL condition, e.g. `row.status == "A" && row.leave == ""`."""

    @model_validator(mode="after")
    def _one_way(self) -> StatusRule:
        if (self.column is None) == (self.expression is None):
            raise ValueError("status needs either `column` (with `active_values`) or `expression`")
        if self.column is not None and not self.active_values:
            raise ValueError("status `column` needs `active_values`")
        return self


class CorrelationRule(_Strict):
    """Match a new row to an existing identity by one field; rules are tried in order."""

    by: CorrelationField


class Safety(_Strict):
    """How much one run may take away before an operator must approve it.

    Percentages of the identities the source had active before the run: a truncated export
    must not fire a mass leaver (midPoint and Entra provisioning have the same guard).
    """

    max_deactivations_percent: float = Field(default=5.0, ge=0, le=100)
    max_deletions_percent: float = Field(default=5.0, ge=0, le=100)


class Source(_Strict):
    """One authoritative source."""

    name: SourceName
    kind: Literal["csv", "sql", "ldap", "scim"]
    csv: CsvOptions | None = None
    sql: SqlOptions | None = None
    ldap: LdapOptions | None = None
    scim: ScimOptions | None = None
    key: str = Field(min_length=1)
    """The source field that identifies a row for good (an employee number, not a name)."""
    mappings: dict[str, str]
    """Profile field (or `attributes.<name>`) -> a column name or a CEL expression over `row`."""
    status: StatusRule | None = None
    correlation: tuple[CorrelationRule, ...] = ()
    safety: Safety = Safety()
    schedule: str | None = None
    """A cron line (`0 2 * * *`: every night at two)."""
    watch: bool = False
    """Run whenever the file or folder changes (csv only)."""

    @field_validator("mappings")
    @classmethod
    def _known_fields(cls, mappings: dict[str, str]) -> dict[str, str]:
        for name, text in mappings.items():
            if name.startswith(ATTRIBUTE_PREFIX):
                if not _ATTRIBUTE_NAME.match(name.removeprefix(ATTRIBUTE_PREFIX)):
                    raise ValueError(f"{name!r}: an attribute name is letters, digits, _")
            elif name != "user_id" and name not in PROFILE_FIELDS:
                known = ", ".join(sorted(PROFILE_FIELDS))
                also = "attributes.<name>"
                raise ValueError(f"{name!r} is no profile field (known: {known}, {also})")
            if not text.strip():
                raise ValueError(f"{name!r}: empty mapping")
        if "user_name" not in mappings:
            raise ValueError("mappings need `user_name`")
        return mappings

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"schedule {value!r} is no cron line of five fields")
        return value

    @model_validator(mode="after")
    def _options_of_kind(self) -> Source:
        given = [kind for kind in ("csv", "sql", "ldap", "scim") if getattr(self, kind) is not None]
        if given != [self.kind]:
            raise ValueError(f"a {self.kind} source needs exactly the `{self.kind}` options")
        if self.schedule is not None and self.watch:
            raise ValueError("`schedule` or `watch`, not both")
        if self.watch and self.kind != "csv":
            raise ValueError("`watch` is for csv sources (a file or folder to watch)")
        return self


class SourcesFile(_Strict):
    """The whole `sources.yaml`."""

    sources: tuple[Source, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesFile:
        names = [source.name for source in self.sources]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"source names must be unique: {', '.join(twice)}")
        return self


class SourcesConfigError(ValueError):
    """A `sources.yaml` that cannot be used; every message names its source."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("; ".join(messages))


def load_sources(text: str) -> SourcesFile:
    """Read `sources.yaml`, reporting every source's errors under the source's name."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SourcesConfigError([f"not YAML: {error}"]) from None
    if not isinstance(document, dict) or not isinstance(document.get("sources"), list):
        raise SourcesConfigError(["the file needs a `sources:` list"])
    messages: list[str] = []
    for index, entry in enumerate(document["sources"]):
        label = _label(entry, index)
        try:
            Source.model_validate(entry)
        except ValidationError as error:
            messages.extend(f"source {label}: {_describe(problem)}" for problem in error.errors())
    if messages:
        raise SourcesConfigError(messages)
    try:
        return SourcesFile.model_validate(document)
    except ValidationError as error:  # what only the whole file can get wrong
        raise SourcesConfigError([_describe(problem) for problem in error.errors()]) from None


def _label(entry: Any, index: int) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return repr(entry["name"])
    return f"#{index + 1} (no name)"


def _describe(problem: Any) -> str:
    where = ".".join(str(part) for part in problem["loc"])
    message = str(problem["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
