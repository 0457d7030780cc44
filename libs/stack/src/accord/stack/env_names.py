"""Names of environment variables the platform reads, in a module that imports nothing: the
`accord up` parser names them in its help without importing the platform."""

from __future__ import annotations

SOURCES_FILE_ENV = "ACCORD_SOURCES_FILE"
