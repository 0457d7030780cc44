"""Authz's own Prometheus metrics: its access decisions.

Served on the runtime's GET /metrics page (bootstrap includes `registry()` in
`runtime.metrics`, see accord.runtime.metrics):

- `accord_authz_decisions_total{source, outcome}`: decisions by where they were asked for,
  `api` (POST /v1/authorize and /v1/authorize/batch, one per question) or `access_request`
  (an access request decided by policy, from access.requested, POST /v1/access-requests or
  a request that waited for its principal; counted once, when its decision is recorded),
  and by outcome: `allow`, `deny`, `pending_approval` (the access needs approvals first) or
  `error` (the evaluation raised).
- `accord_authz_decision_duration_seconds{source}`: the policy evaluation's time, one
  observation per evaluation (an API call, one question or a batch; an access request).

The collectors are the process's: the access flow counts without a handle on the running
service (the consumer, the API and the approvals CLI all decide through it); each
`registry()` serves them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

Source = Literal["api", "access_request"]
API: Final = "api"
ACCESS_REQUEST: Final = "access_request"
SOURCES: tuple[Source, ...] = (API, ACCESS_REQUEST)

#: A decision's effect (the decision API's and an access request's) as an outcome label.
OUTCOMES: Final = {"permit": "allow", "deny": "deny", "approval_required": "pending_approval"}
ERROR: Final = "error"

#: A decision takes about a millisecond in process; a large batch or policy set, more.
DURATION_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

DECISIONS = Counter(
    "accord_authz_decisions",
    "Access decisions by source (api: the decision API, per question; access_request: an"
    " access request, when its decision is recorded) and outcome (allow, deny,"
    " pending_approval, error)",
    ["source", "outcome"],
    registry=None,
)
DURATION = Histogram(
    "accord_authz_decision_duration_seconds",
    "Policy evaluation time by source, one observation per evaluation (a decision API call,"
    " one question or a batch; an access request)",
    ["source"],
    buckets=DURATION_BUCKETS_S,
    registry=None,
)
for _source in SOURCES:  # every series from the start: rates read 0, not nothing
    DURATION.labels(_source)
    for _outcome in (*OUTCOMES.values(), ERROR):
        DECISIONS.labels(_source, _outcome)


def registry() -> CollectorRegistry:
    """A registry serving authz's metrics, for one runtime's page."""
    made = CollectorRegistry()
    made.register(DECISIONS)
    made.register(DURATION)
    return made


def decided(source: Source, effect: str, count: int = 1) -> None:
    """Count decisions of one effect (permit, deny, approval_required)."""
    DECISIONS.labels(source, OUTCOMES[effect]).inc(count)


@contextmanager
def evaluation(source: Source, questions: int = 1) -> Iterator[None]:
    """Time a policy evaluation; one that raises counts its questions as errors."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        DECISIONS.labels(source, ERROR).inc(questions)
        raise
    finally:
        DURATION.labels(source).observe(time.perf_counter() - started)
