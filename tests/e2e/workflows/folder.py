"""The workflow folder of the workflow platform (conftest.py): the shipped lifecycle examples
with durations of seconds instead of days (`derived`: exact replacements, each checked to
apply once, so an example that changes makes the test fail rather than drift), and the
workflows the tests write beside them.

test_lifecycle_workflows.py and test_workflow_timers.py share the one platform, so each
workflow here is scoped so that the other module's identities never start it: the hire-day
workflow of the timer test runs for interns only, whom no example's scope or trigger takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from accord.stack.platform import DEMO_TARGET

EXAMPLES = (
    Path(__file__).parents[3] / "services/orchestrator/src/accord/orchestrator/workflows/examples"
)
#: The department-move approval's timeout (the example's P7D): long enough to decide in.
APPROVAL_TIMEOUT_S = 8
#: The target the target-down test takes down, and the department it is declared for
#: (nobody joins it: only the flaky-account workflow names the target).
FLAKY_TARGET = "scim-flaky"
FLAKY_DEPARTMENT = "Flaky"
#: The flaky-account create's attempts: at 0, 1 and 3 s (backoff PT1S, doubling).
FLAKY_ATTEMPTS = 3
#: The user.deleted leaver's retention: the account stays, disabled, this long. pre-hire
#: starts at hire - 6 s at the earliest, so the account is held past hire + 3 s, 2 s past
#: the moment pre-hire would have enabled it.
DELETION_RETENTION_S = 10

#: A leaver on user.deleted (no example starts on it): disabled at once, deleted after
#: DELETION_RETENTION_S, so the target shows the account still disabled past the moment a
#: superseded pre-hire would have enabled it.
DELETION_LEAVER = f"""\
# Written for tests/e2e/workflows/test_lifecycle_workflows.py: the leaver of a user.deleted.
id: leaver-on-deletion
category: leaver
description: Disable at once, delete after a retention of seconds.
trigger:
  event: user.deleted
tasks:
  - id: disable_accounts
    task: disable_accounts
  - id: retention
    task: wait
    duration: PT{DELETION_RETENTION_S}S
  - id: delete_accounts
    task: delete_accounts
"""

#: An account in the flaky target, on demand, retried with a backoff of a second.
FLAKY_ACCOUNT = f"""\
# Written for tests/e2e/workflows/test_lifecycle_workflows.py: a target that goes down.
id: flaky-account
category: custom
description: An account in the flaky target, retried while the target is down.
trigger:
  on_demand: true
tasks:
  - id: create_account
    task: create_accounts
    targets: [{FLAKY_TARGET}]
    retry: {{max_attempts: {FLAKY_ATTEMPTS}, backoff: PT1S}}
"""


#: The timer test's workflow (test_workflow_timers.py): at the hire instant, a one-second
#: wait (no target, no mail: nothing but the engine's own work), for interns only.
HIRE_DAY_ID = "hire-day"
HIRE_DAY_EMPLOYEE_TYPE = "intern"
HIRE_DAY = f"""\
# Written for tests/e2e/workflows/test_workflow_timers.py: a time trigger and a pause.
id: {HIRE_DAY_ID}
category: custom
description: At the hire instant, a one-second pause (needs no target).
trigger: {{at: hire_date, offset: PT0S}}
scope: identity.employee_type == "{HIRE_DAY_EMPLOYEE_TYPE}"
tasks:
  - id: pause
    task: wait
    duration: PT1S
"""


def derived(name: str, replacements: Mapping[str, str]) -> str:
    """The shipped example `name`, each replacement applied exactly once."""
    text = (EXAMPLES / f"{name}.yaml").read_text()
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{name}.yaml no longer holds {old!r}"
        text = text.replace(old, new)
    return (
        f"# The shipped example {name}.yaml with durations of seconds for the end-to-end test\n"
        "# (tests/e2e/workflows/test_lifecycle_workflows.py); everything else as shipped.\n" + text
    )


def workflow_files(extension_url: str) -> dict[str, str]:
    """The workflow folder: the shipped examples, shortened, and the tests' workflows."""
    return {
        "pre-hire": derived(
            "pre-hire",
            {
                "offset: -P7D": "offset: -PT6S",
                # Named, not `all`: the joiner saga gives Contractors nothing (module docstring).
                "targets: all            # every birthright target": f"targets: [{DEMO_TARGET}]",
                "backoff: PT1M": "backoff: PT1S",
                "offset: PT8H            # 08:00 on the hire date, local time": "offset: PT1S",
            },
        ),
        "contractor-end-date": derived(
            "contractor-end-date",
            {
                "duration: P30D": "duration: PT3S",
            },
        ),
        "department-move": derived(
            "department-move",
            {
                "timeout: P7D": f"timeout: PT{APPROVAL_TIMEOUT_S}S",
            },
        ),
        "leaver": derived(
            "leaver",
            {
                "url: https://mail-automation.example.com/hooks/mailbox-handover": (
                    f"url: {extension_url}"
                ),
                "timeout: P3D": "timeout: PT4S",
                "backoff: PT5M": "backoff: PT1S",
                "duration: P90D": "duration: PT3S",
            },
        ),
        "leaver-on-deletion": DELETION_LEAVER,
        "flaky-account": FLAKY_ACCOUNT,
        HIRE_DAY_ID: HIRE_DAY,
    }
