"""Schemathesis hooks for test_api_fuzzing.py (`st run` loads them: SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import schemathesis

# The Shared Signals receiver takes a SET as `application/secevent+jwt` (RFC 8935): a compact
# JWS, text on the wire.
schemathesis.serializer.alias("application/secevent+jwt", "text/plain")
