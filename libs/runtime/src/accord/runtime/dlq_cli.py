"""`accord dlq`: list and replay dead letters (KAFKA_* from the environment)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aiokafka.errors import KafkaError

from accord.events.cli import EXIT_USAGE, CliError
from accord.runtime.dlq_tools import DeadLetter, read_dead_letters, replay


def register_dlq(commands: Any) -> None:
    """Add `accord dlq` to the accord command."""
    p = commands.add_parser(
        "dlq",
        help="list and replay dead letters (<topic>.dlq)",
        description="A dead letter is an event a service could not handle, with the reason "
        "in its headers. Replaying sends the original event back to its topic; consumers "
        "skip what they handled already. The broker is KAFKA_BOOTSTRAP_SERVERS.",
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="dead letters of a topic, oldest first")
    listing.add_argument("topic", help="the topic (e.g. provision.requested) or its .dlq")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)
    again = actions.add_parser("replay", help="send dead letters back to their topic")
    again.add_argument("topic", help="the topic (e.g. provision.requested) or its .dlq")
    chosen = again.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--event-id", action="append", help="replay this event (repeatable)")
    chosen.add_argument("--all", action="store_true", help="replay every dead letter")
    again.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    again.set_defaults(func=_replay)


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    try:
        letters = asyncio.run(read_dead_letters(args.topic, limit=args.limit))
    except (KafkaError, OSError) as error:
        raise CliError(f"broker unavailable: {type(error).__name__}") from None
    for letter in letters:
        _print(letter, as_json=args.json)
    if not args.json:
        print(f"{len(letters)} dead letter(s) in {args.topic}", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    wanted = set(args.event_id or [])

    async def run() -> tuple[int, list[DeadLetter]]:
        letters = await read_dead_letters(args.topic)
        chosen = [x for x in letters if args.all or x.event_id in wanted]
        if args.dry_run:
            return 0, chosen
        return await replay(chosen), chosen

    try:
        sent, chosen = asyncio.run(run())
    except (KafkaError, OSError) as error:
        raise CliError(f"broker unavailable: {type(error).__name__}") from None
    missing = wanted - {x.event_id for x in chosen}
    for letter in chosen:
        _print(letter, as_json=False)
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {len(chosen) if args.dry_run else sent} dead letter(s)", file=sys.stderr)
    if missing:
        raise CliError(f"not in the DLQ: {', '.join(sorted(missing))}")
    return 0


def _print(letter: DeadLetter, *, as_json: bool) -> None:
    summary = letter.summary()
    if as_json:
        print(json.dumps(summary))
        return
    print(
        f"{summary['position']:<8} {summary['event_id'] or '-':<36} {summary['type'] or '-':<24}"
        f" {summary['failed_at'] or '-':<32} {summary['reason'] or '-'}"
    )
