"""Authoritative source runs (issue 23): what one read of an HR export, an HR database or a
directory did.

Each run of a source ends with one `source.run_completed`: the counts of what it published
(or holds for an operator, or could not read), so the audit log and its dashboard show every
run beside the identity events it caused (they share the run's id as correlation id). An
operator's approval or rejection of a held run ends it again, with `approved` or `rejected`.

Keyed by the source's name, so a source's runs stay in order. Not an identity event: no
per-subject sequence. It carries counts and reasons, never a row's values.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from accord.events import topics
from accord.events.catalogue.base import Count, EventData, Identifier, ShortText

#: How a run ended.
RunOutcome = Literal["published", "held", "approved", "rejected", "failed"]
#: What started it: an operator's command, the schedule, a file that changed, a decision.
RunTrigger = Literal["command", "schedule", "watch", "approval"]


class SourceRunCompleted(EventData):
    """A source's run ended: published, held at the safety limit, decided, or failed."""

    event_type: ClassVar[str] = topics.SOURCE_RUN_COMPLETED
    subject_field: ClassVar[str] = "source"

    run_id: Identifier
    """The run (the correlation id of the identity events it published)."""
    source: Identifier
    """The source's name in sources.yaml."""
    outcome: RunOutcome
    """published: its changes went out; held: it waits for an operator (safety limit);
    approved / rejected: an operator decided a held run; failed: the source could not be read."""
    trigger: RunTrigger
    """command: `accord sources run`; schedule; watch: the export changed; approval: an
    operator's decision on a held run."""
    rows_read: Count = 0
    """Rows the source gave, bad ones included."""
    created: Count = 0
    """user.created events: new identities."""
    updated: Count = 0
    """user.updated events, links of existing identities included."""
    linked: Count = 0
    """Rows linked to an existing identity by correlation (each also counts as updated)."""
    deactivated: Count = 0
    """user.deactivated events: rows the status rule calls inactive."""
    reactivated: Count = 0
    """user.reactivated events: rows active again, or back after they were gone."""
    deleted: Count = 0
    """user.deleted events: rows gone from the source (leavers)."""
    problems: Count = 0
    """Rows skipped, held as ambiguous, or given another user name; `accord sources show`
    lists them with line and reason."""
    reason: ShortText | None = None
    """Why it was held, rejected or failed."""
