"""schemathesis against each running service's OpenAPI document, authenticated as admin.

Every operation first gets a valid request and the same request with a NUL, an over-long
value and a value of the wrong type in each parameter and body field (schemathesis_hooks.py);
then schemathesis generates what it will. No answer may be a 5xx, and no error body may
repeat the input. Bounded (examples per operation and seconds per service) so `make test`
stays quick; set ACCORD_FUZZ_EXAMPLES, ACCORD_FUZZ_SECONDS and ACCORD_FUZZ_SEED for a longer
or other run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from accord.stack.platform import SERVICES, Platform

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCHEMATHESIS = Path(sys.executable).parent / "st"
#: Per-operation settings (every check runs) and the hooks (media types) of the run.
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


#: The services with an API of their own. The sources service serves only the runtime's
#: endpoints (health, readiness, metrics), which every other service's run covers already.
FUZZED = [service for service in SERVICES if service != "sources"]


@pytest.mark.parametrize("service", FUZZED)
async def test_schemathesis_finds_nothing(platform: Platform, service: str) -> None:
    examples = os.environ.get("ACCORD_FUZZ_EXAMPLES", "10")
    seconds = os.environ.get("ACCORD_FUZZ_SECONDS", "5")
    seed = os.environ.get("ACCORD_FUZZ_SEED", "1")
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{platform.endpoints()[service]}/openapi.json",
        "--header",
        f"Authorization: Bearer {platform.admin_token}",
        "--max-examples",
        examples,
        "--max-time",
        seconds,
        "--seed",
        seed,
        # Below the platform's per-caller limit, so the API's logic is what gets tested.
        "--rate-limit",
        "40/s",
        "--generation-database",
        "none",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    summary = [line for line in text.splitlines() if "generated" in line]
    print(f"\nschemathesis {service}: {summary[-1].strip() if summary else '?'}")
    assert process.returncode == 0, text[-4000:]
