"""`accord up`: the whole platform on this machine, until Ctrl-C.

The platform (and the database client) is imported when accord up runs, not to register it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from accord.events.brokers import BROKER_ENV, PROFILES, BrokerName, UnknownBroker, profile_named
from accord.events.cli import EXIT_BROKEN_PIPE, LOCAL_ENV
from accord.runtime.cli_scaffold import add_command
from accord.stack.env_names import SOURCES_FILE_ENV

if TYPE_CHECKING:
    from accord.stack.platform import Platform, PlatformConfig

WORKFLOWS_ENV = "ACCORD_WORKFLOWS_DIR"
SMTP_HOST_ENV = "ACCORD_SMTP_HOST"


def register_up(commands: Any) -> None:
    """Add `accord up` to the accord command."""
    p = add_command(
        commands,
        "up",
        _up,
        help="run the whole platform locally (embedded broker and database by default)",
        description="Start a broker (Tansu, in memory, or Apache Kafka with --broker kafka or "
        "ACCORD_BROKER=kafka) unless KAFKA_BOOTSTRAP_SERVERS is set, PostgreSQL (DATABASE_URL, "
        "else an embedded server with data under --home), a demo SCIM target, a mail catcher "
        "for the workflows' mail (unless ACCORD_SMTP_HOST names a real server) and the six "
        "Accord services; print the endpoints; stop everything cleanly on Ctrl-C.",
    )
    p.add_argument("--home", type=Path, default=Path(".accord"), help="data and log folder")
    p.add_argument(
        "--broker",
        choices=sorted(PROFILES),
        help="the broker to start (default: ACCORD_BROKER, else tansu; kafka for an existing "
        "KAFKA_BOOTSTRAP_SERVERS): Apache Kafka needs Java 17 and `make kafka`",
    )
    p.add_argument("--broker-port", type=int, default=9092)
    p.add_argument("--postgres-port", type=int, default=5433)
    p.add_argument("--scim-port", type=int, default=8710)
    p.add_argument(
        "--workflows",
        type=Path,
        metavar="DIR",
        help=f"folder of lifecycle workflow files for the orchestrator (default: {WORKFLOWS_ENV};"
        " neither: the shipped workflows only)",
    )
    p.add_argument(
        "--sources",
        type=Path,
        metavar="FILE",
        help=f"sources.yaml for the sources service (default: {SOURCES_FILE_ENV}; neither: no"
        " source runs, the service only keeps its view of the identities)",
    )
    p.add_argument(
        "--smtp-port",
        type=int,
        default=0,
        help="port of the mail catcher on 127.0.0.1 (default: a free one); no catcher is "
        f"started when {SMTP_HOST_ENV} is set: the orchestrator then sends to that server",
    )
    # Commands run beside accord up read the env file it writes; accord up itself must not,
    # or a second start would take the first one's embedded database for an existing one.
    p.set_defaults(local_env=False)


class BadOption(ValueError):
    """An option or variable accord up cannot start with (one line, exit status 2)."""


def _up(args: argparse.Namespace) -> int:
    try:
        config = platform_config(args, os.environ)
    except (UnknownBroker, BadOption) as error:
        _error(error)
        return 2
    import asyncio

    from accord.stack.platform import Platform

    return asyncio.run(_run(Platform(config)))


def platform_config(args: argparse.Namespace, environ: Mapping[str, str]) -> PlatformConfig:
    """What `accord up ARGS` runs, given its environment.

    :raises UnknownBroker: for a broker name neither --broker nor ACCORD_BROKER may give.
    :raises BadOption: for a workflows folder or a sources file that is not there.
    """
    from accord.runtime.cli_support import database_url
    from accord.stack.platform import PlatformConfig

    existing = environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    broker = _broker(args.broker, existing, environ)
    return PlatformConfig(
        home=args.home.resolve(),
        kafka_bootstrap_servers=existing,
        broker=broker,
        database_url=database_url() if environ.get("DATABASE_URL") else None,
        broker_port=args.broker_port,
        postgres_port=args.postgres_port,
        scim_port=args.scim_port,
        seed_demo=True,
        workflows_dir=workflows_folder(args.workflows, environ),
        sources_file=sources_file(args.sources, environ),
        # A real server named in the environment wins: the orchestrator inherits ACCORD_SMTP_*.
        mail_catcher=not environ.get(SMTP_HOST_ENV),
        smtp_port=args.smtp_port,
    )


def workflows_folder(option: Path | None, environ: Mapping[str, str]) -> Path | None:
    """--workflows, else ACCORD_WORKFLOWS_DIR (see _given_path)."""
    return _given_path(option, environ, "--workflows", WORKFLOWS_ENV, "workflows", "folder")


def sources_file(option: Path | None, environ: Mapping[str, str]) -> Path | None:
    """--sources, else ACCORD_SOURCES_FILE (see _given_path)."""
    return _given_path(option, environ, "--sources", SOURCES_FILE_ENV, "sources", "file")


def _given_path(
    option: Path | None,
    environ: Mapping[str, str],
    flag: str,
    variable: str,
    name: str,
    kind: Literal["folder", "file"],
) -> Path | None:
    """The option, else the variable, as an absolute path (the services may run elsewhere);
    None when neither is given. A path that is not there, or not of its kind, stops accord
    up at once rather than after a service has started and refused it."""
    given = option if option is not None else environ.get(variable)
    if not given:
        return None
    path = Path(given).expanduser().resolve()
    source = flag if option is not None else variable
    if not path.exists():
        raise BadOption(f"the {name} {kind} {path} ({source}) does not exist")
    if not (path.is_dir() if kind == "folder" else path.is_file()):
        raise BadOption(f"the {name} {kind} {path} ({source}) is not a {kind}")
    return path


def _broker(chosen: str | None, existing: str | None, environ: Mapping[str, str]) -> BrokerName:
    """--broker, else ACCORD_BROKER, else Tansu here or Apache Kafka for an existing broker."""
    name = chosen or environ.get(BROKER_ENV) or ("kafka" if existing else "tansu")
    return profile_named(name).name


async def _run(platform: Platform) -> int:
    import asyncio

    from accord.runtime.cli_support import DATABASE_ERRORS, database_failure
    from accord.stack.errors import StartupError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = loop.time()
    code = 0
    try:
        await platform.start(progress=True)
        took = loop.time() - started
        print(f"accord: ready in {took:.1f} s. Endpoints:", flush=True)
        for name, address in platform.endpoints().items():
            print(f"  {name:<13} {address}", flush=True)
        print(f"  dashboard     {platform.endpoints()['auditor']}/dashboard", flush=True)
        print(f"  logs          {platform.config.home / 'logs'}", flush=True)
        for line in _configured_lines(platform):
            print(line, flush=True)
        token_file = platform.admin_token_file
        auditor = platform.endpoints()["auditor"]
        print(f"  admin token   {token_file} (mode 0600)", flush=True)
        print(f"  demo token    {platform.demo_token_file} (mode 0600)", flush=True)
        beside = platform.env_file == LOCAL_ENV.resolve()
        how = "the accord command run here reads it" if beside else "for the accord command"
        print(f"  accord env    {platform.env_file} ({how})", flush=True)
        print(
            f'accord: try: curl -H "Authorization: Bearer $(cat {token_file})" '
            f"{auditor}/v1/audit/events",
            flush=True,
        )
        print("accord: press Ctrl-C to stop", flush=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            problem = platform.failed()
            if problem:
                _error(problem)
                code = 1
                break
    except StartupError as error:
        _error(error)
        code = 1
    except BrokenPipeError:
        code = EXIT_BROKEN_PIPE  # nobody reads our output any more: stop all the same
    except DATABASE_ERRORS as error:  # DATABASE_URL's database refused or is not there
        failure = database_failure(error)
        _error(failure)
        code = failure.exit_code
    finally:
        with contextlib.suppress(BrokenPipeError):
            print("accord: stopping", flush=True)
        await platform.stop()
        with contextlib.suppress(BrokenPipeError):
            print("accord: stopped", flush=True)
    return code


def _configured_lines(platform: Platform) -> list[str]:
    """The summary's lines about the workflows (their folder, where their mail goes) and the
    sources file."""
    config = platform.config
    lines = []
    if config.workflows_dir is not None:
        lines.append(f"  workflows     {config.workflows_dir}")
    if config.sources_file is not None:
        lines.append(f"  sources file  {config.sources_file}")
    if platform.mail is not None:
        lines.append(
            f"  mail catcher  smtp://{platform.mail.host}:{platform.mail.port}, caught mail in "
            f"{platform.mail.directory} (an .eml each)"
        )
    else:
        env = platform.service_env()
        lines.append(f"  mail          sent to {env[SMTP_HOST_ENV]} ({SMTP_HOST_ENV})")
    return lines


def _error(problem: object) -> None:
    """`accord: error: PROBLEM` on stderr, at once."""
    print(f"accord: error: {problem}", file=sys.stderr, flush=True)
