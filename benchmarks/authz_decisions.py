"""Decisions per second of authz's Cedar engine, in one process, as authz uses it.

Uses the policies shipped with authz (``load_policy_dir(default_policy_dir())``) and
their catalogue. The principal is realistic: an active user in a group nested two levels
deep (3 groups) holding 5 entitlements (one of them payroll/admin, so asking for
finance/payment-approver meets the separation-of-duties rule); the resources cycle through
the catalogue's entitlements (low risk, high risk, toxic combination). Each mode is warmed
up, then run for ``--seconds`` (3 s):

(a) ``decide`` one query at a time with an entity list (the principal, its groups, the
    entitlement and its application), parsed on every call: what the decision API and the
    access-request handler do per question;
(b) ``decide`` one query at a time with an ``EntityGraph`` parsed once by
    ``load_entities``;
(c) ``decide_batch`` of 100 queries with the entity list (parsed once per batch), and
    with the pre-parsed graph.

With ``--http URL --token TOKEN`` it also measures a running authz end to end (d):
``POST /v1/authorize`` (one question a request) and ``POST /v1/authorize/batch`` (100 a
request) for ``--http-seconds`` (5 s) each, ``--concurrency`` (8) requests in flight. The
token needs the authorize permission; ``--principal`` (default ``bench-user``) is looked
up in that authz's directory projection (an unknown user is denied, which still measures
the path). Every decision it answers is also emitted as an authz.decided event unless
ACCORD_DECISION_LOG_RATE says otherwise, and that cost is included.

Usage::

    uv run --frozen python benchmarks/authz_decisions.py [--seconds 3]
    uv run --frozen python benchmarks/authz_decisions.py --http http://127.0.0.1:8703 \\
        --token "$TOKEN" [--principal ada] [--concurrency 8] [--http-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from accord.authz.catalogue import Catalogue, entitlement_id, load_catalogue
from accord.authz.domain.model import AccessQuery, Decision, Entity, EntityRef
from accord.authz.domain.policy_files import (
    CATALOGUE_FILE,
    default_policy_dir,
    load_policy_dir,
)
from accord.authz.domain.policy_set import (
    EntityGraph,
    LoadedPolicies,
    decide,
    decide_batch,
    load_entities,
)

BATCH = 100
WARM_UP_S = 0.5
PRINCIPAL = "bench-user"
GROUPS = ("payroll-team", "finance", "all-staff")
"""The user is in payroll-team, which is in finance, which is in all-staff."""
HELD = ("wiki/reader", "wiki/editor", "payroll/viewer", "payroll/admin", "crm/user")


@dataclass(frozen=True)
class Workload:
    """The policies, the principal's entities and the questions asked, in rotation."""

    policies: LoadedPolicies
    catalogue: Catalogue
    principal: list[Entity]
    resources: list[tuple[str, str]]

    def queries(self, count: int) -> list[AccessQuery]:
        """``count`` questions, cycling through the catalogue's entitlements."""
        return [self.query(i) for i in range(count)]

    def query(self, i: int) -> AccessQuery:
        """The i-th question: may the principal have the next entitlement?"""
        application, entitlement = self.resources[i % len(self.resources)]
        return AccessQuery(
            principal=EntityRef("User", PRINCIPAL),
            action="request",
            resource=EntityRef("Entitlement", entitlement_id(application, entitlement)),
            context={"justification": "quarter close"} if i % 2 else {},
        )

    def entities_for(self, i: int) -> list[Entity]:
        """What a single decision gets: the principal and the i-th entitlement's entities."""
        application, entitlement = self.resources[i % len(self.resources)]
        return [*self.principal, *self.catalogue.resource_entities(application, entitlement)]

    def all_entities(self) -> list[Entity]:
        """The principal and every catalogue entitlement (a batch's, or the graph's)."""
        seen: dict[EntityRef, Entity] = {e.ref: e for e in self.principal}
        for application, entitlement in self.resources:
            for entity in self.catalogue.resource_entities(application, entitlement):
                seen.setdefault(entity.ref, entity)
        return list(seen.values())


def workload() -> Workload:
    """The shipped policies and catalogue, and a principal in nested groups."""
    folder = default_policy_dir()
    catalogue = load_catalogue(folder / CATALOGUE_FILE)
    user = Entity(
        EntityRef("User", PRINCIPAL),
        {
            "active": True,
            "department": "Finance",
            "entitlements": {EntityRef("Entitlement", held) for held in HELD},
        },
        (EntityRef("Group", GROUPS[0]),),
    )
    groups = [
        Entity(
            EntityRef("Group", name),
            {},
            tuple(EntityRef("Group", p) for p in GROUPS[i + 1 : i + 2]),
        )
        for i, name in enumerate(GROUPS)
    ]
    resources = [
        (application, entitlement)
        for application, entry in catalogue.applications.items()
        for entitlement in entry.entitlements
    ]
    return Workload(load_policy_dir(folder), catalogue, [user, *groups], resources)


# --- in process -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One mode's figures."""

    name: str
    decisions: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Decisions per second."""
        return self.decisions / self.seconds

    @property
    def micros(self) -> float:
        """Microseconds per decision."""
        return self.seconds / self.decisions * 1e6


def run_for(name: str, seconds: float, step: Callable[[int], int]) -> Result:
    """Call ``step(i)`` (which returns how many decisions it made) for about ``seconds``."""
    deadline = time.perf_counter() + WARM_UP_S
    i = 0
    while time.perf_counter() < deadline:
        step(i)
        i += 1
    decisions = 0
    started = time.perf_counter()
    deadline = started + seconds
    while (now := time.perf_counter()) < deadline:
        decisions += step(i)
        i += 1
    return Result(name, decisions, now - started)


def in_process(work: Workload, seconds: float) -> list[Result]:
    """Modes (a) to (c)."""
    policies = work.policies
    lists = [work.entities_for(i) for i in range(len(work.resources))]
    singles = [work.query(i) for i in range(len(work.resources) * 2)]
    everything = work.all_entities()
    graph: EntityGraph = load_entities(policies, everything)
    batch = work.queries(BATCH)

    def with_list(i: int) -> int:
        decide(policies, singles[i % len(singles)], lists[i % len(lists)])
        return 1

    def with_graph(i: int) -> int:
        decide(policies, singles[i % len(singles)], graph)
        return 1

    def batch_list(_: int) -> int:
        return len(decide_batch(policies, batch, everything))

    def batch_graph(_: int) -> int:
        return len(decide_batch(policies, batch, graph))

    return [
        run_for("(a) decide, entity list per query", seconds, with_list),
        run_for("(b) decide, pre-parsed EntityGraph", seconds, with_graph),
        run_for(f"(c) decide_batch x{BATCH}, entity list", seconds, batch_list),
        run_for(f"    decide_batch x{BATCH}, EntityGraph", seconds, batch_graph),
    ]


def check(work: Workload) -> Counter[str]:
    """Decide each question once both ways; they must agree and raise no errors."""
    outcomes: Counter[str] = Counter()
    graph = load_entities(work.policies, work.all_entities())
    for i in range(len(work.resources)):
        query = work.query(i)
        one: Decision = decide(work.policies, query, work.entities_for(i))
        assert one == decide(work.policies, query, graph), query
        assert not one.errors, one.errors
        outcomes[f"{one.effect} ({', '.join(one.reasons)})"] += 1
    return outcomes


# --- over HTTP ------------------------------------------------------------------------------


def question(work: Workload, i: int, principal: str) -> dict[str, Any]:
    """The i-th question as decision_api's Question body (the caller sends the resource's
    entities; authz adds the principal's from its projection)."""
    application, entitlement = work.resources[i % len(work.resources)]
    entities = [
        {
            "type": e.ref.type,
            "id": e.ref.id,
            "attrs": e.attrs,
            "parents": [{"type": p.type, "id": p.id} for p in e.parents],
        }
        for e in work.catalogue.resource_entities(application, entitlement)
    ]
    return {
        "principal": {"type": "User", "id": principal},
        "action": "request",
        "resource": {"type": "Entitlement", "id": entitlement_id(application, entitlement)},
        "context": {"justification": "quarter close"} if i % 2 else {},
        "entities": entities,
    }


async def over_http(
    url: str, token: str, work: Workload, *, principal: str, seconds: float, concurrency: int
) -> list[tuple[str, int, int, float]]:
    """Mode (d): (endpoint, requests, decisions, seconds) for single and batch questions."""
    singles = [question(work, i, principal) for i in range(len(work.resources) * 2)]
    batch = {"requests": [question(work, i, principal) for i in range(BATCH)]}
    endpoints: list[tuple[str, Sequence[dict[str, Any]], int]] = [
        ("/v1/authorize", singles, 1),
        ("/v1/authorize/batch", [batch], BATCH),
    ]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results = []
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=30
    ) as client:
        for path, bodies, per_request in endpoints:
            first = await client.post(path, json=bodies[0])
            if first.status_code != 200:
                raise SystemExit(f"POST {url}{path}: HTTP {first.status_code}: {first.text[:300]}")
            await _load(client, path, bodies, concurrency, WARM_UP_S)
            started = time.perf_counter()
            done = await _load(client, path, bodies, concurrency, seconds)
            elapsed = time.perf_counter() - started
            results.append((path, done, done * per_request, elapsed))
    return results


async def _load(
    client: httpx.AsyncClient,
    path: str,
    bodies: Sequence[dict[str, Any]],
    concurrency: int,
    seconds: float,
) -> int:
    """Requests answered with 200 by ``concurrency`` workers posting for ``seconds``."""
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> int:
        done, i = 0, offset
        while time.perf_counter() < deadline:
            response = await client.post(path, json=bodies[i % len(bodies)])
            if response.status_code != 200:
                raise SystemExit(f"POST {path}: HTTP {response.status_code}: {response.text[:300]}")
            done += 1
            i += concurrency
        return done

    return sum(await asyncio.gather(*(worker(k) for k in range(concurrency))))


# --- the command ----------------------------------------------------------------------------


def main() -> None:
    """Parse the arguments, measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="per in-process mode (3)")
    parser.add_argument("--http", metavar="URL", help="also measure this authz over HTTP")
    parser.add_argument("--token", help="API token with the authorize permission (with --http)")
    parser.add_argument("--principal", default=PRINCIPAL, help="user asked about over HTTP")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP requests in flight (8)")
    parser.add_argument("--http-seconds", type=float, default=5.0, help="per endpoint (5)")
    args = parser.parse_args()
    if args.http and not args.token:
        parser.error("--http needs --token")

    work = workload()
    print(
        f"policies: {len(work.policies.policy_ids)}; principal: active user in "
        f"{len(GROUPS)} nested groups holding {len(HELD)} entitlements; resources: "
        f"{len(work.resources)} catalogue entitlements"
    )
    for outcome, count in sorted(check(work).items()):
        print(f"  {count} x {outcome}")
    print()
    print(f"{'mode':<40}{'decisions/s':>14}{'µs/decision':>14}")
    for result in in_process(work, args.seconds):
        print(f"{result.name:<40}{result.per_second:>14,.0f}{result.micros:>14.1f}")
    if args.http:
        print()
        print(f"(d) over HTTP, {args.http}, concurrency {args.concurrency}")
        print(f"{'endpoint':<40}{'decisions/s':>14}{'requests/s':>14}{'ms/request':>14}")
        measured = asyncio.run(
            over_http(
                args.http.rstrip("/"),
                args.token,
                work,
                principal=args.principal,
                seconds=args.http_seconds,
                concurrency=args.concurrency,
            )
        )
        for path, requests, decisions, seconds in measured:
            latency = seconds / requests * args.concurrency * 1000 if requests else float("nan")
            print(
                f"POST {path:<35}{decisions / seconds:>14,.0f}{requests / seconds:>14,.0f}"
                f"{latency:>14.1f}"
            )


if __name__ == "__main__":
    main()
