"""`accord dlq`: list and replay dead letters (KAFKA_* from the environment).

The Kafka client is imported by the actions that run, not to register the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from accord.events.cli import EXIT_USAGE, CliError, check_kafka_settings
from accord.runtime.cli_scaffold import add_action, add_actions, add_json, add_limit

if TYPE_CHECKING:
    from accord.runtime.dlq_tools import DeadEvent

T = TypeVar("T")


def register_dlq(commands: Any) -> None:
    """Add `accord dlq` to the accord command."""
    actions = add_actions(
        commands,
        "dlq",
        help="list and replay dead letters (<topic>.dlq)",
        description="A dead letter is an event services could not handle, with the reason "
        "in its headers; an event several consumer groups failed is one entry, naming them. "
        "Replaying sends the original event back to its topic once, for those groups only; "
        "they skip what they handled already. A dead letter is resolved once its group has "
        "handled the event since, or a later event of the same work: resolved ones are left "
        "out unless --include-resolved. The broker is KAFKA_BOOTSTRAP_SERVERS.",
    )
    listing = add_action(
        actions, "list", _list, help="dead letters of a topic by event, oldest first"
    )
    listing.add_argument("topic", help="the topic (e.g. provision.requested) or its .dlq")
    add_limit(listing, 100)
    add_json(listing)
    listing.add_argument(
        "--include-resolved", action="store_true", help="also the events that need no action"
    )
    again = add_action(
        actions,
        "replay",
        _replay,
        help="send dead letters back to their topic, for the groups that failed them",
    )
    again.add_argument("topic", help="the topic (e.g. provision.requested) or its .dlq")
    chosen = again.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--event-id", action="append", help="replay this event (repeatable)")
    chosen.add_argument("--all", action="store_true", help="replay every dead letter")
    again.add_argument(
        "--include-resolved",
        action="store_true",
        help="also replay resolved events, to every group that failed them",
    )
    again.add_argument("--dry-run", action="store_true", help="show what would be replayed")


def _list(args: argparse.Namespace) -> int:
    from accord.runtime.dlq_tools import read_dead_events

    if args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    check_kafka_settings()
    events = _on_broker(read_dead_events(args.topic))
    shown = [x for x in events if args.include_resolved or x.needs_action]
    for event in shown[: args.limit]:
        _print(event, as_json=args.json)
    if not args.json:
        more = f", the first {args.limit} shown" if len(shown) > args.limit else ""
        hidden = len(events) - len(shown)
        resolved = f"; {hidden} resolved not shown (--include-resolved)" if hidden else ""
        print(
            f"{len(shown)} event(s) with dead letters in {args.topic}{more}{resolved}",
            file=sys.stderr,
        )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from accord.runtime.dlq_tools import read_dead_events, replay

    check_kafka_settings()
    wanted = set(args.event_id or [])

    async def run() -> tuple[int, list[DeadEvent], list[DeadEvent]]:
        events = [x for x in await read_dead_events(args.topic) if args.all or x.event_id in wanted]
        chosen = [x for x in events if args.include_resolved or x.needs_action]
        resolved = [x for x in events if x not in chosen]
        if args.dry_run:
            return 0, chosen, resolved
        return await replay(chosen, include_resolved=args.include_resolved), chosen, resolved

    sent, chosen, resolved = _on_broker(run())
    missing = wanted - {x.event_id for x in chosen + resolved}
    for event in chosen:
        _print(event, as_json=False)
    if resolved:
        print(
            f"{len(resolved)} resolved dead letter(s) left out (--include-resolved)",
            file=sys.stderr,
        )
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {len(chosen) if args.dry_run else sent} dead letter(s)", file=sys.stderr)
    if missing:
        raise CliError(f"not in the DLQ: {', '.join(sorted(missing))}")
    return 0


def _on_broker(work: Coroutine[Any, Any, T]) -> T:
    """Run work on the broker; its failures as one line."""
    import asyncio

    from aiokafka.errors import KafkaError

    from accord.runtime.dlq_tools import NoSuchTopic

    try:
        return asyncio.run(work)
    except NoSuchTopic as error:
        raise CliError(f"{error} (`accord events` lists the event types)") from None
    except BrokenPipeError:
        raise  # whoever read the output stopped reading: not the broker's doing
    except (KafkaError, OSError) as error:
        raise CliError(f"broker unavailable: {str(error) or type(error).__name__}") from None


def _print(event: DeadEvent, *, as_json: bool) -> None:
    summary = event.summary()
    if as_json:
        print(json.dumps(summary))
        return
    consumers = ",".join(
        (name if count == 1 else f"{name}({count})")
        + (":resolved" if name in event.resolved else "")
        for name, count in event.consumers.items()
    )
    print(
        f"{summary['position']:<8} {summary['event_id'] or '-':<36} {summary['type'] or '-':<24}"
        f" {consumers:<24} {summary['failed_at'] or '-':<32} {summary['reason'] or '-'}"
    )
