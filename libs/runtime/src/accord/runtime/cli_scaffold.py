"""The argparse scaffolding the `accord` subcommands share: a command, the actions of a
command made of actions (`accord sagas list`), and the options several take (--json,
--limit, bounded numbers).

A helper builds what the commands built by hand: the same flags, defaults, help text and
argparse errors. What the commands run reports its failures as the `accord` command's
CliError (accord.events.cli prints one line and exits with its code); cli_support runs
work on the database.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

#: What an `accord` command (or action) runs: its exit code.
Command = Callable[[argparse.Namespace], int]

#: The help of a --json flag that prints a listing as JSON lines.
JSON_LINES = "one JSON object per line"


def add_command(
    commands: Any, name: str, func: Command | None = None, *, help: str, **options: Any
) -> argparse.ArgumentParser:
    """`accord NAME`: its parser (options: description, epilog...), running func if given."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, **options)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def add_actions(commands: Any, name: str, *, help: str, **options: Any) -> Any:
    """`accord NAME ACTION ...`: the actions of a command made of actions, one required."""
    parser = add_command(commands, name, help=help, **options)
    return parser.add_subparsers(title="actions", metavar="ACTION", required=True)


def add_action(
    actions: Any, name: str, func: Command, *, help: str, **options: Any
) -> argparse.ArgumentParser:
    """An action of `add_actions`' command: its parser, running func."""
    return add_command(actions, name, func, help=help, **options)


def add_json(parser: argparse.ArgumentParser, help: str = JSON_LINES) -> None:
    """--json: print JSON instead of text."""
    parser.add_argument("--json", action="store_true", help=help)


def add_limit(
    parser: argparse.ArgumentParser,
    default: int,
    *,
    type: Callable[[str], int] = int,
    help: str | None = None,
) -> None:
    """--limit N: at most this many (the default said in the help)."""
    parser.add_argument(
        "--limit", type=type, default=default, help=help or f"at most this many ({default})"
    )


def int_between(
    low: int, high: int, name: str, *, not_a_number: bool = False
) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high ("must be between low and high").

    Text that is no number: with not_a_number, "'x' is not a number"; else argparse's own
    "invalid NAME value: 'x'", which names the type by `name`.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            if not_a_number:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
            raise
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    parse.__name__ = parse.__qualname__ = name
    return parse
