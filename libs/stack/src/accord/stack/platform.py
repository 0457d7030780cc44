"""The whole platform on one machine: broker, PostgreSQL, a SCIM target, a mail catcher
(accord up) and six services.

Used by `accord up` and by the end-to-end tests, so both run exactly the same thing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx

from accord.events.brokers import BROKER_ENV, BrokerName, profile_named
from accord.events.cli import env_file_text
from accord.runtime.security import api_tokens
from accord.runtime.security.roles import Role
from accord.stack import demo, keys
from accord.stack.broker import EmbeddedBroker, LocalBroker
from accord.stack.env_names import SOURCES_FILE_ENV
from accord.stack.errors import StartupError
from accord.stack.kafka import KafkaBroker
from accord.stack.network import free_port
from accord.stack.postgres import EmbeddedPostgres
from accord.stack.process import ManagedProcess
from accord.stack.readiness import wait_until_ready
from accord.stack.scim_target import ScimTarget
from accord.stack.smtp_sink import SmtpSink

log = logging.getLogger(__name__)

SERVICES = ("orchestrator", "provisioner", "authz", "auditor", "authn", "sources")
DEMO_TARGET = "scim-demo"
DEMO_TOKEN_ENV = "ACCORD_SCIM_DEMO_TOKEN"  # noqa: S105 - the variable's name, not a secret
#: Joiners of this department get no demo account (accord up's example of a rule).
CONTRACTORS = "Contractors"
#: The From of workflow mail sent to the mail catcher, unless ACCORD_SMTP_FROM says otherwise.
CAUGHT_MAIL_SENDER = "accord@localhost"


@dataclass(frozen=True)
class DepartmentTarget:
    """A further SCIM target for the joiners of one department, who get an account there only.

    E.g. a target behind a fault proxy, so that tests can break it without touching the
    demo target other flows use.
    """

    name: str
    url: str
    """The SCIM base URL, with its /v2 if the server needs it."""
    token: str
    department: str
    max_attempts: int = 5
    """The provisioner's attempts per request before it gives up."""
    breaker_threshold: int = 5
    """Transient failures in a row that open the target's circuit."""
    breaker_cooldown_s: float = 30.0
    """How long an open circuit stays open before one call may try the target again."""

    @property
    def token_env(self) -> str:
        """The variable that hands the token to the provisioner."""
        return f"ACCORD_{self.name.upper().replace('-', '_')}_TOKEN"


@dataclass(frozen=True)
class LdapDirectory:
    """An LDAP target (e.g. a test's slapd) where the joiners of one department get an
    account too, beside the demo SCIM target."""

    name: str
    url: str
    bind_dn: str
    password: str
    people_dn: str
    groups_dn: str
    department: str

    @property
    def password_env(self) -> str:
        """The variable that hands the bind password to the provisioner."""
        return f"ACCORD_{self.name.upper().replace('-', '_')}_PASSWORD"


@dataclass
class PlatformConfig:
    """Where the platform keeps its files and which ports it listens on."""

    home: Path
    """Folder for data (embedded PostgreSQL), logs and generated config."""
    kafka_bootstrap_servers: str | None = None
    """An existing Kafka; None starts `broker` on this machine."""
    broker: BrokerName = "tansu"
    """The broker's kind: the one started here (Tansu in a second, Apache Kafka in about
    five), or what kafka_bootstrap_servers runs; the services' clients adapt to it."""
    database_url: str | None = None
    """An existing PostgreSQL; None starts the embedded one with data under home."""
    broker_port: int = 9092
    postgres_port: int = 5433
    scim_port: int = 8710
    service_ports: dict[str, int] = field(
        default_factory=lambda: {
            "orchestrator": 8701,
            "provisioner": 8702,
            "authz": 8703,
            "auditor": 8704,
            "authn": 8705,
            "sources": 8706,
        }
    )
    extra_env: dict[str, str] = field(default_factory=dict)
    department_targets: list[DepartmentTarget] = field(default_factory=list)
    """Further targets, each for one department only (none for accord up)."""
    ldap_directories: list[LdapDirectory] = field(default_factory=list)
    """LDAP targets, each for one department as well as the demo target (none for accord up)."""
    ready_timeout_s: float = 60.0
    seed_demo: bool = False
    """Publish the demo organisation (a manager and her report) once ready (accord up)."""
    workflows_dir: Path | None = None
    """The orchestrator's folder of lifecycle workflow files (ACCORD_WORKFLOWS_DIR); None
    leaves the variable as the environment has it."""
    sources_file: Path | None = None
    """The sources service's sources.yaml (ACCORD_SOURCES_FILE); None leaves the variable as
    the environment has it (unset: no source runs, the service keeps its view of the
    identities only)."""
    mail_catcher: bool = False
    """Start an SMTP sink and send the orchestrator's mail there (accord up): send_email
    works on a laptop, and the mail lands under home/mail instead of anyone's inbox."""
    smtp_port: int = 0
    """The mail catcher's port on 127.0.0.1; 0: a free one."""
    services: tuple[str, ...] = SERVICES
    """The services to start (all of them but for a benchmark that keeps measuring the
    services of its recorded figures)."""

    @classmethod
    def ephemeral(cls, home: Path, **overrides: object) -> PlatformConfig:
        """A config on free ports, for tests and benchmarks."""
        config = cls(
            home=home,
            broker_port=free_port(),
            postgres_port=free_port(),
            scim_port=free_port(),
            service_ports={name: free_port() for name in SERVICES},
        )
        for key, value in overrides.items():
            setattr(config, key, value)
        return config


class Platform:
    """Starts the parts in dependency order and stops them in reverse."""

    def __init__(self, config: PlatformConfig) -> None:
        unknown = sorted(set(config.services) - set(SERVICES))
        if unknown:
            raise ValueError(f"no such service: {', '.join(unknown)}")
        self.config = config
        self.broker: LocalBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.scim = ScimTarget(port=config.scim_port, log_dir=config.home / "logs")
        self.mail = (
            SmtpSink(config.home / "mail", port=config.smtp_port) if config.mail_catcher else None
        )
        """The mail catcher, if config.mail_catcher (its port is known once started)."""
        self.services: dict[str, ManagedProcess] = {}
        self.admin_token = ""
        """An admin API token issued at start (also in home/admin-token, mode 0600)."""
        self.bootstrap_servers = config.kafka_bootstrap_servers or ""
        self.database_url = config.database_url or ""

    def endpoints(self) -> dict[str, str]:
        """Every address a user may want, by name."""
        ports = self.config.service_ports
        found = {name: f"http://127.0.0.1:{ports[name]}" for name in self.config.services}
        found["kafka"] = self.bootstrap_servers
        found["postgres"] = _without_password(self.database_url)
        found[DEMO_TARGET] = f"{self.scim.base_url}/v2"
        found.update({t.name: t.url for t in self.config.department_targets})
        found.update({d.name: d.url for d in self.config.ldap_directories})
        return found

    def service_env(self) -> dict[str, str]:
        """The environment every service process gets."""
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                BROKER_ENV: self.config.broker,
                "DATABASE_URL": self.database_url,
                "ACCORD_TARGETS_FILE": str(self.targets_file),
                DEMO_TOKEN_ENV: self.scim.bearer_token,
                "ACCORD_BIRTHRIGHT_FILE": str(self.birthright_file),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name, port in self.config.service_ports.items():
            env[f"ACCORD_{name.upper()}_PORT"] = str(port)
        env.setdefault("ACCORD_AUDIT_SIGNING_KEY_FILE", str(self.audit_signing_key))
        env.setdefault("ACCORD_AUDIT_CHECKPOINT_DIR", str(self.config.home / "audit-checkpoints"))
        env.setdefault("ACCORD_SSF_SIGNING_KEY_FILE", str(self.ssf_signing_key))
        authn_port = self.config.service_ports["authn"]
        env.setdefault("ACCORD_AUTHN_PUBLIC_URL", f"http://127.0.0.1:{authn_port}")
        # Plain http on loopback: Shared Signals wants https outside development.
        env.setdefault("ACCORD_SSF_ALLOW_HTTP", "true")
        if "ACCORD_AUTHN_CREDENTIAL_KEYS" not in env and self.credential_keys.exists():
            env["ACCORD_AUTHN_CREDENTIAL_KEYS"] = self.credential_keys.read_text().strip()
        env.update({t.token_env: t.token for t in self.config.department_targets})
        env.update({d.password_env: d.password for d in self.config.ldap_directories})
        if self.config.workflows_dir is not None:
            env["ACCORD_WORKFLOWS_DIR"] = str(self.config.workflows_dir)
        if self.config.sources_file is not None:
            env[SOURCES_FILE_ENV] = str(self.config.sources_file)
        if self.mail is not None:
            sender = env.get("ACCORD_SMTP_FROM") or CAUGHT_MAIL_SENDER
            # The catcher's settings only: a stray ACCORD_SMTP_PASSWORD, say, would ask for
            # an AUTH the catcher does not offer.
            for name in [n for n in env if n.startswith("ACCORD_SMTP_")]:
                del env[name]
            env.update(self.mail.env(sender=sender))
        env.update(self.config.extra_env)
        return env

    @property
    def targets_file(self) -> Path:
        """The provisioner's targets file, generated for the demo target."""
        return self.config.home / "targets.yaml"

    @property
    def audit_signing_key(self) -> Path:
        """The Ed25519 key the auditor signs chain checkpoints with (made at first start)."""
        return self.config.home / "audit-signing-key.pem"

    @property
    def ssf_signing_key(self) -> Path:
        """The EC P-256 key authn signs Security Event Tokens with (made at first start)."""
        return self.config.home / "ssf-signing-key.pem"

    @property
    def credential_keys(self) -> Path:
        """The keys that encrypt MFA secrets at rest (made at first start; mode 0600)."""
        return self.config.home / "authn-credential-keys"

    @property
    def birthright_file(self) -> Path:
        """The orchestrator's birthright rules, generated for the demo target."""
        return self.config.home / "birthright.yaml"

    @property
    def admin_token_file(self) -> Path:
        """The admin API token issued at start (mode 0600)."""
        return self.config.home / "admin-token"

    @property
    def demo_token_file(self) -> Path:
        """The demo SCIM target's bearer token (mode 0600; a new one at every start)."""
        return self.config.home / f"{DEMO_TARGET}-token"

    @property
    def env_file(self) -> Path:
        """What the `accord` command run beside the platform needs (mode 0600): the
        database, the broker, the targets and birthright files and the targets' secrets.
        Written once the platform is ready, removed when it stops."""
        return self.config.home / "env"

    def cli_env(self) -> dict[str, str]:
        """The variables of env_file: those service_env() sets that the CLI reads (with the
        sources file, if any: `accord sources run NAME` then runs what the service runs)."""
        env = self.service_env()
        names = [
            "DATABASE_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            BROKER_ENV,
            "ACCORD_TARGETS_FILE",
            "ACCORD_BIRTHRIGHT_FILE",
            DEMO_TOKEN_ENV,
            *(t.token_env for t in self.config.department_targets),
            *(d.password_env for d in self.config.ldap_directories),
        ]
        if env.get(SOURCES_FILE_ENV):
            names.append(SOURCES_FILE_ENV)
        return {name: env[name] for name in names}

    async def start(self, progress: bool = False) -> None:
        """Start everything and wait until each service is ready."""
        home = self.config.home
        (home / "logs").mkdir(parents=True, exist_ok=True)
        say = _printer(progress)
        if not self.bootstrap_servers:
            self.broker = self._local_broker()
            say(f"starting {self._broker_title()} on 127.0.0.1:{self.config.broker_port}")
            await self.broker.start()
            self.bootstrap_servers = self.broker.bootstrap_servers
        if not self.database_url:
            self.postgres = EmbeddedPostgres(home / "pgdata", port=self.config.postgres_port)
            say(f"starting embedded PostgreSQL on 127.0.0.1:{self.config.postgres_port}")
            await self.postgres.start()
            self.database_url = self.postgres.dsn
        await api_tokens.migrate(self.database_url)
        self.admin_token = await self.issue_token("accord-admin", {Role.ADMIN}, "accord up")
        _write_secret(self.admin_token_file, self.admin_token + "\n")
        say(f"starting demo SCIM target (scim2-server) on {self.scim.base_url}")
        await self.scim.start()
        _write_secret(self.demo_token_file, self.scim.bearer_token + "\n")
        if self.mail is not None:
            await self.mail.start()
            where = f"{self.mail.host}:{self.mail.port}"
            say(f"mail catcher (SMTP) on {where}, mail kept in {self.mail.directory}")
        self._write_targets()
        self._write_birthright()
        await self._make_audit_signing_key()
        keys.make_authn_keys(self.ssf_signing_key, self.credential_keys)
        env = self.service_env()
        for name in self.config.services:
            process = ManagedProcess(
                name,
                [sys.executable, "-m", f"accord.{name}"],
                env=env,
                log_path=home / "logs" / f"{name}.log",
            )
            say(f"starting {name} on port {self.config.service_ports[name]}")
            await process.start()
            self.services[name] = process
        await asyncio.gather(*(self._wait_ready(name) for name in self.config.services))
        if self.config.seed_demo:
            say(f"publishing the demo organisation: {demo.describe()}")
            await demo.seed(self.bootstrap_servers, profile_named(self.config.broker))
        self._write_env_file()

    def _local_broker(self) -> LocalBroker:
        logs = self.config.home / "logs"
        if self.config.broker == "kafka":
            # Its data stays under home, beside PostgreSQL's: a restart keeps both.
            return KafkaBroker(
                self.config.home / "kafka", port=self.config.broker_port, log_dir=logs
            )
        return EmbeddedBroker(port=self.config.broker_port, log_dir=logs)

    def _broker_title(self) -> str:
        if self.config.broker == "kafka":
            return "Apache Kafka (one KRaft node)"
        return "Kafka-protocol broker (Tansu, in memory)"

    def _write_env_file(self) -> None:
        _write_secret(
            self.env_file,
            "# Written by accord up while it runs. The accord command run in this folder reads\n"
            "# it for the variables its environment does not set; a shell can source it.\n"
            + env_file_text(self.cli_env()),
        )

    async def _make_audit_signing_key(self) -> None:
        if self.audit_signing_key.exists():
            return
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "accord.events.cli",
            "audit",
            "keygen",
            "--out",
            str(self.audit_signing_key),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            raise StartupError(f"cannot make the audit signing key: {err.decode().strip()}")

    async def issue_token(
        self, subject: str, roles: set[Role], description: str = "", lifetime_days: int = 30
    ) -> str:
        """A new API token for the platform's APIs."""
        pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=1)
        assert pool is not None
        try:
            issued = await api_tokens.TokenStore(pool).issue(
                subject, roles, lifetime=timedelta(days=lifetime_days), description=description
            )
        finally:
            await pool.close()
        return issued.token

    async def _wait_ready(self, name: str) -> None:
        url = f"http://127.0.0.1:{self.config.service_ports[name]}/readyz"

        async def probe() -> None:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(url)
                response.raise_for_status()

        await wait_until_ready(
            self.services[name], probe, timeout=self.config.ready_timeout_s, what=name
        )

    def _write_birthright(self) -> None:
        dedicated = self.config.department_targets
        excluded = ", ".join([CONTRACTORS, *(t.department for t in dedicated)])
        rules = [
            "  - name: everyone-but-contractors-gets-the-demo-app\n"
            f"    targets: [{DEMO_TARGET}]\n"
            f"    unless: {{department: [{excluded}]}}\n"
        ]
        rules += [
            f"  - name: {t.department.lower()}-gets-{t.name}-only\n"
            f"    targets: [{t.name}]\n"
            f"    when: {{department: {t.department}}}\n"
            for t in dedicated
        ]
        rules += [
            f"  - name: {d.department.lower()}-also-gets-{d.name}\n"
            f"    targets: [{d.name}]\n"
            f"    when: {{department: {d.department}}}\n"
            for d in self.config.ldap_directories
        ]
        self.birthright_file.write_text(
            "# Generated by accord up. Who gets an account where: every matching rule adds\n"
            "# its targets. Conditions: a profile field (or attributes.<key>) and a value or\n"
            "# a list of values; `when` must all hold, `unless` must all fail.\n"
            "rules:\n" + "".join(rules)
        )

    def _write_targets(self) -> None:
        entries = [_scim_target_entry(DEMO_TARGET, f"{self.scim.base_url}/v2", DEMO_TOKEN_ENV)]
        entries += [
            _scim_target_entry(
                t.name,
                t.url,
                t.token_env,
                max_attempts=t.max_attempts,
                breaker_threshold=t.breaker_threshold,
                breaker_cooldown_s=t.breaker_cooldown_s,
            )
            for t in self.config.department_targets
        ]
        entries += [_ldap_target_entry(d) for d in self.config.ldap_directories]
        self.targets_file.write_text(
            "# Generated by accord up: the demo SCIM target. Secrets come from the environment.\n"
            "targets:\n" + "".join(entries)
        )

    async def stop_service(self, name: str) -> None:
        """Stop one service gracefully (SIGTERM)."""
        await self.services[name].stop(timeout=30)

    async def kill_service(self, name: str) -> int:
        """Kill one service with SIGKILL, as a crash would; returns its exit status."""
        process = self.services[name]
        process.send_signal(signal.SIGKILL)
        return await process.wait()

    async def start_service(self, name: str) -> None:
        """(Re)start one service and wait until it is ready."""
        process = ManagedProcess(
            name,
            [sys.executable, "-m", f"accord.{name}"],
            env=self.service_env(),
            log_path=self.config.home / "logs" / f"{name}.log",
        )
        await process.start()
        self.services[name] = process
        await self._wait_ready(name)

    async def stop(self) -> None:
        """Stop services first (they drain and commit), then the parts they use."""
        self.env_file.unlink(missing_ok=True)
        await asyncio.gather(*(p.stop(timeout=30) for p in self.services.values()))
        await self.scim.stop()
        if self.mail is not None:
            await self.mail.stop()
        if self.postgres is not None:
            await self.postgres.stop()
        if self.broker is not None:
            await self.broker.stop()

    def failed(self) -> str | None:
        """Name and log tail of a service that died, if any."""
        for name, process in self.services.items():
            if not process.running:
                return f"{name} exited: {process.describe_exit()}"
        return None


def _printer(enabled: bool):  # type: ignore[no-untyped-def]
    def say(message: str) -> None:
        if enabled:
            print(f"accord: {message}", flush=True)

    return say


def _write_secret(path: Path, text: str) -> None:
    """Write a file only its owner may read (also when it exists already)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def _scim_target_entry(name: str, url: str, token_env: str, **limits: float) -> str:
    """One SCIM target of the targets file, with the limits given (defaults otherwise)."""
    lines = [
        f"  - name: {name}",
        "    kind: scim",
        f"    url: {url}",
        f"    token_env: {token_env}",
    ]
    lines += [f"    {key}: {value}" for key, value in limits.items()]
    return "\n".join(lines) + "\n"


def _ldap_target_entry(directory: LdapDirectory) -> str:
    """One LDAP target of the targets file."""
    return (
        f"  - name: {directory.name}\n"
        "    kind: ldap\n"
        f"    url: {directory.url}\n"
        f"    bind_dn: {directory.bind_dn}\n"
        f"    password_env: {directory.password_env}\n"
        f"    people_dn: {directory.people_dn}\n"
        f"    groups_dn: {directory.groups_dn}\n"
    )


def _without_password(dsn: str) -> str:
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


__all__ = [
    "SERVICES",
    "SOURCES_FILE_ENV",
    "DepartmentTarget",
    "LdapDirectory",
    "Platform",
    "PlatformConfig",
    "StartupError",
]
