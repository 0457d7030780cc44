"""Each service's migrations make exactly the schema checked in as services/<name>/schema.sql."""

from __future__ import annotations

import difflib

import pytest

from accord.stack.db_schemas import SERVICES, migrated, schema_file

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_make_the_checked_in_schema(
    postgres_server: str, service: str
) -> None:
    made = await migrated(postgres_server, service)
    path = schema_file(service)
    kept = path.read_text() if path.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            kept.splitlines(keepends=True), made.splitlines(keepends=True), str(path), "migrations"
        )
    )
    assert made == kept, f"run `make db-schemas` if the change is meant:\n{diff[:4000]}"
