"""Readers: each kind of source opened and streamed as `SourceRow`s (the I/O edge).

The core (config, csv_reader, mapping, diff, safety, events, problems) is pure and never
imports this package; an import-linter contract keeps network and database clients here.
`open_reader` opens any source by its kind, so a run treats them all alike.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping

from accord.sources.config import Source
from accord.sources.readers.base import SourceReader, SourceRejected, SourceUnavailable
from accord.sources.readers.csv_file import open_csv
from accord.sources.readers.ldap import open_ldap
from accord.sources.readers.scim import open_scim
from accord.sources.readers.sql import open_sql

__all__ = ["SourceReader", "SourceRejected", "SourceUnavailable", "open_reader"]


@contextlib.asynccontextmanager
async def open_reader(
    source: Source, environ: Mapping[str, str] | None = None
) -> AsyncIterator[SourceReader]:
    """The source opened by its kind (secrets from `environ`, the process's by default)."""
    env = os.environ if environ is None else environ
    if source.csv is not None:
        async with open_csv(source.csv) as csv_reader:
            yield csv_reader
    elif source.sql is not None:
        async with open_sql(source.name, source.sql, env) as sql_reader:
            yield sql_reader
    elif source.ldap is not None:
        async with open_ldap(source.name, source.ldap, env) as ldap_reader:
            yield ldap_reader
    elif source.scim is not None:
        async with open_scim(source.name, source.scim, env) as scim_reader:
            yield scim_reader
    else:
        raise SourceRejected(f"source {source.name!r}: no reader for kind {source.kind} yet")
