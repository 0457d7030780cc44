"""`accord token`: create, list and revoke Accord API tokens (needs DATABASE_URL).

The database client is imported by the actions that run, not to register the command.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from accord.events.cli import EXIT_USAGE, CliError
from accord.runtime.cli_scaffold import add_action, add_actions
from accord.runtime.security.roles import Permission, Role

if TYPE_CHECKING:
    import asyncpg

    from accord.runtime.security import api_tokens

_DURATION = re.compile(r"(\d{1,6})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def register_token(commands: Any) -> None:
    """Add `accord token` to the accord command."""
    actions = add_actions(
        commands,
        "token",
        help="create, list and revoke API tokens for Accord's HTTP APIs",
        description="API tokens are random, stored hashed (SHA-256), scoped by roles and "
        "optionally by permissions, expire, and can be revoked. The database is DATABASE_URL.",
    )
    create = add_action(actions, "create", _create, help="issue a token and print it once")
    create.add_argument("--subject", required=True, help="who the token is for (a user id)")
    create.add_argument(
        "--role",
        action="append",
        required=True,
        choices=[r.value for r in Role],
        help="a role (repeat for several)",
    )
    create.add_argument(
        "--scope",
        action="append",
        choices=[p.value for p in Permission],
        help="restrict to these permissions (repeatable; default: all the roles grant)",
    )
    create.add_argument(
        "--expires-in", default="90d", help="lifetime such as 90d, 12h or 30m (default 90d)"
    )
    create.add_argument("--description", default="", help="what the token is for")
    listing = add_action(actions, "list", _list, help="list tokens (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include expired and revoked")
    revoke = add_action(actions, "revoke", _revoke, help="revoke a token at once")
    revoke.add_argument("token_id", help="the id shown by `accord token list`")


def parse_duration(text: str) -> timedelta:
    """90d, 12h, 30m -> timedelta."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90d, 12h or 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _on_tokens(work: Callable[[api_tokens.TokenStore], Awaitable[int]]) -> int:
    """Run work on the token store of DATABASE_URL (its table migrated first)."""
    from accord.runtime.cli_support import run_on_database
    from accord.runtime.security import api_tokens

    async def with_store(pool: asyncpg.Pool) -> int:
        return await work(api_tokens.TokenStore(pool))

    return run_on_database(with_store, prepare=api_tokens.migrate)


def _create(args: argparse.Namespace) -> int:
    try:
        lifetime = parse_duration(args.expires_in)
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None

    async def work(store: api_tokens.TokenStore) -> int:
        try:
            issued = await store.issue(
                args.subject,
                {Role(r) for r in args.role},
                scopes={Permission(s) for s in args.scope} if args.scope else None,
                lifetime=lifetime,
                description=args.description,
            )
        except ValueError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        info = issued.info
        print(issued.token)
        print(
            f"id {info.token_id}, subject {info.subject}, roles {','.join(info.roles)}, "
            f"expires {info.expires_at:%Y-%m-%d %H:%M} UTC. Shown once: store it now.",
            file=sys.stderr,
        )
        return 0

    return _on_tokens(work)


def _list(args: argparse.Namespace) -> int:
    async def work(store: api_tokens.TokenStore) -> int:
        tokens = await store.list(include_inactive=args.all)
        print(f"{'ID':<17} {'SUBJECT':<20} {'ROLES':<24} {'EXPIRES':<17} STATE")
        for t in tokens:
            state = (
                "revoked"
                if t.revoked_at
                else "expired"
                if t.expires_at <= datetime.now(UTC)
                else "active"
            )
            print(
                f"{t.token_id:<17} {t.subject[:20]:<20} {','.join(t.roles)[:24]:<24} "
                f"{t.expires_at:%Y-%m-%d %H:%M} {state}"
            )
        return 0

    return _on_tokens(work)


def _revoke(args: argparse.Namespace) -> int:
    async def work(store: api_tokens.TokenStore) -> int:
        if not await store.revoke(args.token_id):
            raise CliError(f"no active token {args.token_id}")
        print(f"revoked {args.token_id}")
        return 0

    return _on_tokens(work)
