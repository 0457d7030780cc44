"""The `accord` command. accord-events brings `publish`, `events` and `schemas`; other
installed Accord packages add commands through the `accord.cli` entry-point group.

Whatever goes wrong, the command says it in one line on stderr and exits non-zero: a
traceback is for `accord -v`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.events.brokers import UnknownBroker, broker_profile
from accord.events.topics import EVENT_TYPES

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_USAGE = 2
EXIT_FAILURE = 1
#: A reader that stops reading (`accord dlq list --json | head`): 128 + SIGPIPE, as a shell
#: reports a command that SIGPIPE ended.
EXIT_BROKEN_PIPE = 141
#: What `accord up` writes for the commands run beside it (the same folder): the database,
#: the broker, the targets file and the demo target's token.
LOCAL_ENV = Path(".accord/env")


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
        "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE. "
        f"Run beside `accord up` (in the same folder), the command reads {LOCAL_ENV}, which "
        "accord up writes, for the variables the environment does not set.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the Kafka client's own log messages, and the traceback of an unexpected error",
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


def console() -> int:
    """Entry point of the `accord` console script: main() on the command line, beside
    `accord up` with the variables of its LOCAL_ENV file the environment lacks."""
    return main(local_env=LOCAL_ENV)


def main(argv: Sequence[str] | None = None, *, local_env: Path | None = None) -> int:
    """Run `accord ARGV`; with local_env, its variables fill in the environment's gaps
    (except for commands that say `local_env=False`: `accord up` writes the file)."""
    args = build_parser().parse_args(argv)
    # Imported once a command runs: `accord --help` answers without pydantic.
    from pydantic import ValidationError

    if not args.verbose:
        # aiokafka logs each failed connection attempt; the error line below says it once.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    command: Command = args.func
    try:
        if local_env is not None and getattr(args, "local_env", True):
            for name, value in read_env_file(local_env).items():
                os.environ.setdefault(name, value)
        code = command(args)
        # Output to a pipe is buffered: a reader gone shows here, not at the exit.
        sys.stdout.flush()
        return code
    except CliError as error:
        _say(str(error))
        return error.exit_code
    except ValidationError as error:
        # Settings read from the environment (a service's *Settings class) that do not parse.
        _say(f"{error.title}: {_first_problem(error)}")
        return EXIT_USAGE
    except BrokenPipeError:
        # Nobody reads any more: stop quietly, and keep the interpreter's last flush from
        # failing again on the closed pipe.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (accord -v ... shows the traceback)"
        _say(f"unexpected {type(error).__name__}: {error}{hint}")
        return EXIT_FAILURE


def _say(message: str) -> None:
    """An error as one line on stderr (messages from libraries may span several)."""
    print(f"accord: error: {' '.join(message.split())}", file=sys.stderr)


def _first_problem(error: ValidationError) -> str:
    """The first problem of a validation error, without the input (it may be a secret)."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    more = error.error_count() - 1
    return f"{where}: {first['msg']}" + (f" (and {more} more)" if more else "")


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines (values quoted as a POSIX shell reads them; # comments); none when
    the file does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {path}: {error}") from None
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        try:
            words = shlex.split(value)
        except ValueError:
            words = None
        if not equals or not name.isidentifier() or words is None or len(words) > 1:
            raise CliError(f"{path}:{number}: not a NAME=value line")
        found[name] = words[0] if words else ""
    return found


#: What kafka_config.client_config() passes on, and aiokafka takes.
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def check_kafka_settings() -> None:
    """A CliError (exit 2) naming the KAFKA_* variable the Kafka client would refuse, or
    an ACCORD_BROKER that names no broker."""
    from accord.events.kafka_config import client_config

    protocol = (os.environ.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    if protocol not in KAFKA_PROTOCOLS:
        raise CliError(
            f"KAFKA_SECURITY_PROTOCOL is not one of {', '.join(KAFKA_PROTOCOLS)}", EXIT_USAGE
        )
    mechanism = os.environ.get("KAFKA_SASL_MECHANISM") or KAFKA_SASL_MECHANISMS[-1]
    if protocol.startswith("SASL_") and mechanism not in KAFKA_SASL_MECHANISMS:
        mechanisms = ", ".join(KAFKA_SASL_MECHANISMS)
        raise CliError(f"KAFKA_SASL_MECHANISM is not one of {mechanisms}", EXIT_USAGE)
    try:
        client_config()
    except OSError as error:  # the TLS files: missing, unreadable, not PEM
        raise CliError(f"KAFKA_SSL_* files: {error}", EXIT_USAGE) from None
    try:
        broker_profile()
    except UnknownBroker as error:
        raise CliError(str(error), EXIT_USAGE) from None


def env_file_text(variables: Mapping[str, str]) -> str:
    """The NAME=value lines read_env_file reads (and a POSIX shell can source)."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in variables.items())


def _add_publish(commands: Any) -> None:
    types = ", ".join(EVENT_TYPES)
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
    from accord.events.errors import InvalidEvent
    from accord.events.publisher import new_traceparent
    from accord.events.registry import REGISTRY

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
    # The event starts a flow, and a trace: every event it causes carries the trace id too.
    envelope = envelope.model_copy(update={"traceparent": new_traceparent()})
    if args.dry_run:
        print(envelope.model_dump_json(indent=2))
        return 0
    check_kafka_settings()
    import asyncio

    asyncio.run(_send(envelope, args.bootstrap_servers))
    print(f"published {envelope.type} {envelope.id} (subject {envelope.subject})")
    return 0


async def _send(envelope: Any, bootstrap_servers: str | None) -> None:
    from aiokafka.errors import KafkaError

    from accord.events.publisher import Publisher

    publisher = Publisher(source=envelope.source, bootstrap_servers=bootstrap_servers)
    started = False
    try:
        async with publisher:
            started = True
            await publisher.send(envelope)
    except KafkaError as error:
        raise CliError(
            f"could not publish to Kafka: {error}{_start_hint(error, started)}"
        ) from None


def _start_hint(error: Exception, started: bool) -> str:
    """Why a producer may not start: Tansu refuses the idempotent producer (InitProducerId)
    that ACCORD_BROKER=kafka, the default, asks for, and says only UnknownError."""
    from aiokafka.errors import UnknownError

    if started or not isinstance(error, UnknownError) or not broker_profile().idempotent_producer:
        return ""
    return (
        " (the broker refused an idempotent producer; if it is Tansu, as `make run` starts,"
        " set ACCORD_BROKER=tansu)"
    )


def _add_events(commands: Any) -> None:
    p = commands.add_parser("events", help="list the event types, their topics and schemas")
    p.set_defaults(func=_list_events)


def _list_events(args: argparse.Namespace) -> int:
    from accord.events.registry import REGISTRY

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
    try:
        changed = schemas.write(args.folder)
    except OSError as error:
        raise CliError(f"cannot write the schemas: {error}") from None
    print(f"wrote {len(changed)} file(s)" + (": " + ", ".join(changed) if changed else ""))
    return 0


if __name__ == "__main__":
    # Run with -m, this file is `__main__`; subcommands import `accord.events.cli`, and the
    # CliError they raise is that module's: its main() is the one that catches it.
    from accord.events import cli as _imported

    raise SystemExit(_imported.console())
