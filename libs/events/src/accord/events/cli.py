"""The `accord` command. accord-events brings `publish`, `events` and `schemas`; other
installed Accord packages add commands through the `accord.cli` entry-point group."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from accord.events.errors import InvalidEvent
from accord.events.registry import REGISTRY

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliError(Exception):
    """A failure the user can act on; printed as one line."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every installed subcommand."""
    parser = argparse.ArgumentParser(
        prog="accord",
        description="Accord: event-driven identity orchestration.",
        epilog="Kafka connection: KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, "
        "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the Kafka client's own log messages"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_publish(commands)
    _add_events(commands)
    _add_schemas(commands)
    for plugin in entry_points(group="accord.cli"):
        try:
            register = plugin.load()
        except ImportError as error:
            # A broken optional package must not take `accord publish` down with it.
            print(f"accord: warning: command {plugin.name!r} unavailable: {error}", file=sys.stderr)
            continue
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `accord` console script."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        # aiokafka logs each failed connection attempt; the error line below says it once.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    command: Command = args.func
    try:
        return command(args)
    except CliError as error:
        print(f"accord: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


def _add_publish(commands: Any) -> None:
    types = ", ".join(spec.type for spec in REGISTRY)
    p = commands.add_parser(
        "publish",
        help="validate an event and publish it to its topic",
        description="Validate event data against its schema, wrap it in a CloudEvents "
        "envelope and publish it. Invalid data is refused and nothing is sent.",
        epilog=f"Event types: {types}",
    )
    p.add_argument("type", help="event type, e.g. user.created")
    p.add_argument(
        "--data",
        required=True,
        help="event data: inline JSON, @FILE to read a file, or @- for standard input",
    )
    p.add_argument("--source", default="urn:accord:cli", help="CloudEvents source (producer URI)")
    p.add_argument(
        "--sequence",
        type=int,
        help="per-subject sequence of identity events (default: microseconds since the epoch)",
    )
    p.add_argument("--correlation-id", help="flow id (default: the event id)")
    p.add_argument("--id", dest="event_id", help="event id (default: a new UUID)")
    p.add_argument("--bootstrap-servers", help="Kafka brokers (default: $KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and print the envelope, send nothing"
    )
    p.set_defaults(func=_publish)


def _read_data(argument: str) -> dict[str, Any]:
    if argument == "@-":
        text = sys.stdin.read()
    elif argument.startswith("@"):
        try:
            text = Path(argument[1:]).read_text()
        except OSError as error:
            raise CliError(f"cannot read {argument[1:]}: {error.strerror}", EXIT_USAGE) from None
        except UnicodeDecodeError:
            raise CliError(f"{argument[1:]} is not UTF-8 text", EXIT_USAGE) from None
    else:
        text = argument
    try:
        data = json.loads(text)
    except ValueError as error:
        raise CliError(f"--data is not valid JSON: {error}", EXIT_USAGE) from None
    if not isinstance(data, dict):
        raise CliError("--data must be a JSON object", EXIT_USAGE)
    return data


def _publish(args: argparse.Namespace) -> int:
    from accord.events.envelope import new_event

    try:
        spec = REGISTRY.spec(args.type)
        data = REGISTRY.parse(spec.type, spec.version, _read_data(args.data))
        sequence = args.sequence
        if sequence is None and spec.model.identity_event:
            sequence = time.time_ns() // 1000
        envelope = new_event(
            data,
            source=args.source,
            sequence=sequence,
            correlation_id=args.correlation_id,
            event_id=args.event_id,
        )
    except InvalidEvent as error:
        raise CliError(error.reason, EXIT_USAGE) from None
    if args.dry_run:
        print(envelope.model_dump_json(indent=2))
        return 0
    asyncio.run(_send(envelope, args.bootstrap_servers))
    print(f"published {envelope.type} {envelope.id} (subject {envelope.subject})")
    return 0


async def _send(envelope: Any, bootstrap_servers: str | None) -> None:
    from aiokafka.errors import KafkaError

    from accord.events.publisher import Publisher

    publisher = Publisher(source=envelope.source, bootstrap_servers=bootstrap_servers)
    try:
        async with publisher:
            await publisher.send(envelope)
    except KafkaError as error:
        raise CliError(f"could not publish to Kafka: {error}") from None


def _add_events(commands: Any) -> None:
    p = commands.add_parser("events", help="list the event types, their topics and schemas")
    p.set_defaults(func=_list_events)


def _list_events(args: argparse.Namespace) -> int:
    width = max(len(spec.type) for spec in REGISTRY)
    for spec in REGISTRY:
        kind = "identity" if spec.model.identity_event else ""
        print(f"{spec.type:<{width}}  v{spec.version}  {kind:<8}  {spec.description}")
    return 0


def _add_schemas(commands: Any) -> None:
    p = commands.add_parser(
        "schemas", help="write (or check) the JSON Schemas and the AsyncAPI document"
    )
    p.add_argument("folder", type=Path, help="output folder, e.g. libs/events")
    p.add_argument("--check", action="store_true", help="fail if the files differ; write nothing")
    p.set_defaults(func=_schemas)


def _schemas(args: argparse.Namespace) -> int:
    from accord.events import schemas

    if args.check:
        problems = schemas.drift(args.folder)
        if problems:
            raise CliError("schemas drifted from the models: " + ", ".join(problems))
        print("schemas match the models")
        return 0
    changed = schemas.write(args.folder)
    print(f"wrote {len(changed)} file(s)" + (": " + ", ".join(changed) if changed else ""))
    return 0


if __name__ == "__main__":
    # Run with -m, this file is `__main__`; subcommands import `accord.events.cli`, and the
    # CliError they raise is that module's: its main() is the one that catches it.
    from accord.events import cli as _imported

    raise SystemExit(_imported.main())
