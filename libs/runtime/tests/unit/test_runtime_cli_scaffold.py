"""The `accord` subcommands' argparse scaffolding builds what they built by hand."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from accord.runtime.cli_scaffold import (
    JSON_LINES,
    add_action,
    add_actions,
    add_command,
    add_json,
    add_limit,
    int_between,
)


def _run(args: argparse.Namespace) -> int:
    return 0


def _other(args: argparse.Namespace) -> int:
    return 1


def top() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(prog="accord")
    return parser, parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def by_hand() -> argparse.ArgumentParser:
    parser, commands = top()
    p = commands.add_parser("widgets", help="list widgets", description="Widgets.", epilog="E.")
    actions = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="widgets, newest first", description="All.")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_run)
    show = actions.add_parser("show", help="one widget")
    show.add_argument("widget_id")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=_other, extra=True)
    return parser


def scaffolded() -> argparse.ArgumentParser:
    parser, commands = top()
    actions = add_actions(
        commands, "widgets", help="list widgets", description="Widgets.", epilog="E."
    )
    listing = add_action(actions, "list", _run, help="widgets, newest first", description="All.")
    add_limit(listing, 50)
    add_json(listing)
    show = add_action(actions, "show", _other, help="one widget")
    show.add_argument("widget_id")
    add_json(show, "print one JSON object")
    show.set_defaults(extra=True)
    return parser


def helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every parser's help, by its prog."""
    found = {parser.prog: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.update(helps(sub))
    return found


def parse(parser: argparse.ArgumentParser, *argv: str) -> argparse.Namespace:
    return parser.parse_args(list(argv))


def failure(parser: argparse.ArgumentParser, capsys: Any, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(list(argv))
    return int(str(stopped.value.code)), capsys.readouterr().err.splitlines()[-1]


def test_the_help_is_what_the_commands_wrote_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert helps(scaffolded()) == helps(by_hand())
    assert len(helps(scaffolded())) == 4


@pytest.mark.parametrize("build", [by_hand, scaffolded])
def test_the_actions_run_their_function_with_their_defaults(build: Any) -> None:
    parser = build()
    listing = parse(parser, "widgets", "list", "--limit", "7", "--json")
    assert (listing.func, listing.limit, listing.json) == (_run, 7, True)
    assert parse(parser, "widgets", "list").limit == 50
    show = parse(parser, "widgets", "show", "w1")
    assert (show.func, show.widget_id, show.json, show.extra) == (_other, "w1", False, True)


@pytest.mark.parametrize("build", [by_hand, scaffolded])
def test_an_action_is_required(build: Any, capsys: Any) -> None:
    assert failure(build(), capsys, "widgets") == (
        2,
        "accord widgets: error: the following arguments are required: ACTION",
    )


def test_a_command_without_actions_runs_its_function() -> None:
    parser, commands = top()
    p = add_command(commands, "up", _run, help="start", description="Start it.")
    p.add_argument("--port", type=int, default=1)
    p.set_defaults(local_env=False)
    args = parse(parser, "up")
    assert (args.func, args.port, args.local_env) == (_run, 1, False)
    assert p.description == "Start it."


def test_a_command_may_leave_its_function_to_its_actions() -> None:
    parser, commands = top()
    add_command(commands, "bare", help="nothing")
    assert not hasattr(parse(parser, "bare"), "func")


def test_the_json_flag_says_json_lines_unless_told() -> None:
    parser = argparse.ArgumentParser()
    add_json(parser)
    (flag,) = (a for a in parser._actions if a.dest == "json")
    assert (flag.option_strings, flag.help, flag.default) == (["--json"], JSON_LINES, False)
    assert JSON_LINES == "one JSON object per line"


def test_the_limit_says_its_default_unless_told() -> None:
    parser = argparse.ArgumentParser()
    add_limit(parser, 100)
    told = argparse.ArgumentParser()
    add_limit(told, 50, help="records per page (50)")
    (limit,) = (a for a in parser._actions if a.dest == "limit")
    (page,) = (a for a in told._actions if a.dest == "limit")
    assert (limit.help, limit.default, limit.type) == ("at most this many (100)", 100, int)
    assert (page.help, page.default) == ("records per page (50)", 50)


@pytest.mark.parametrize(
    ("text", "expected"), [("1", 1), ("10", 10), (" 5 ", 5), ("+3", 3), ("0010", 10)]
)
def test_a_bounded_number_takes_what_int_takes_within_bounds(text: str, expected: int) -> None:
    assert int_between(1, 10, "_n")(text) == expected


@pytest.mark.parametrize("text", ["0", "11", "-1"])
def test_a_bounded_number_outside_says_the_bounds(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be between 1 and 10$"):
        int_between(1, 10, "_n")(text)


def test_argparse_names_the_type_for_text_that_is_no_number(capsys: Any) -> None:
    parser = argparse.ArgumentParser(prog="p")
    add_limit(parser, 50, type=int_between(1, 10_000, "_positive"))
    assert failure(parser, capsys, "--limit", "x") == (
        2,
        "p: error: argument --limit: invalid _positive value: 'x'",
    )
    assert failure(parser, capsys, "--limit", "0") == (
        2,
        "p: error: argument --limit: must be between 1 and 10000",
    )


def test_or_says_it_is_not_a_number(capsys: Any) -> None:
    parser = argparse.ArgumentParser(prog="p")
    add_limit(parser, 50, type=int_between(1, 10_000, "_limit", not_a_number=True))
    assert failure(parser, capsys, "--limit", "x") == (
        2,
        "p: error: argument --limit: 'x' is not a number",
    )
    assert parse(parser, "--limit", "10000").limit == 10_000
