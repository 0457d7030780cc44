"""docker-compose.yml against the Compose Specification, and the Dockerfile's promises.

No container engine runs here: the compose file is validated against the Compose
Specification's JSON Schema (the copy check-jsonschema vendors as `vendor.compose-spec`),
and the Dockerfile is read, not built; its health check command is run against a local
HTTP server.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from accord.events import REGISTRY, brokers
from accord.events.topic_layout import COMPOSE, broker_config
from accord.orchestrator.adapters.smtp import SmtpSettings
from accord.orchestrator.domain.birthright import Birthright
from accord.orchestrator.workflows.loader import read_folder
from accord.provisioner.targets import TargetsFile
from accord.runtime.config_file import load_yaml_model
from accord.runtime.settings import ServiceSettings
from accord.sources.config import load_sources
from accord.sources.settings import SourcesSettings
from accord.stack import deploy_files
from accord.stack.platform import SERVICES

from .conftest import PORTS, PRODUCER_CLOSE_S, ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema bundled with check-jsonschema (no network).

    Read from the package's files without importing it: check-jsonschema 0.38.1 does not
    import with click 8.3 (its issue #719), which uv.lock has today.
    """
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None
    assert spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    schema: dict[str, Any] = json.loads(
        (folder / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    )
    return schema


def compose_errors(document: Any) -> list[str]:
    """What the Compose Specification finds wrong with a compose document."""
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml, YAML anchors and merge keys resolved."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def seconds(duration: str) -> float:
    """A compose duration such as `40s` or `1m30s`, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def env_files(service: dict[str, Any], *, optional: bool = True) -> list[Path]:
    """The env files a service names (compose takes a path or a list of them); with
    optional=False only those it requires (a `required: false` one may be absent)."""
    named = service.get("env_file", [])
    entries = [named] if isinstance(named, str | dict) else named
    return [
        ROOT / (e["path"] if isinstance(e, dict) else e)
        for e in entries
        if optional or not isinstance(e, dict) or e.get("required", True) is True
    ]


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines of an env file, comments and blank lines skipped."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            found[key.strip()] = value
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """What a container's environment holds: its env files, then `environment` over them."""
    env: dict[str, str] = {}
    for path in env_files(service, optional=False):  # as a fresh checkout has them
        env.update(read_env_file(path))
    env.update({k: str(v) for k, v in service.get("environment", {}).items()})
    return env


def broker_property(variable: str) -> str:
    """The server property the apache/kafka image makes of a KAFKA_ variable (its README:
    `.` is written `_`, `_` is `__` and `-` is `___`)."""
    parts = re.split(r"(_{1,3})", variable.removeprefix("KAFKA_").lower())
    return "".join({"_": ".", "__": "_", "___": "-"}.get(p, p) for p in parts)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's volumes (short syntax), source -> path in the container."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[source] = target
    return found


def test_the_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


def test_the_specification_check_would_catch_a_mistake(compose: dict[str, Any]) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["auditor"]["healthceck"] = {"disable": True}
    assert compose_errors(broken)


def test_compose_runs_the_six_services_kafka_postgres_and_a_scim_target(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert {*SERVICES, "kafka", "postgres", "kafka-init", "scim-demo"} <= services.keys()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("prometheus", "grafana", "prometheus-token"):
        assert services[name]["profiles"] == ["monitoring"], "optional"
    for service in services.values():
        image = service["image"]
        if image.startswith("accord-"):
            continue  # built here
        assert re.search(r":[\w.-]*\d", image), f"{image}: pin a version"


def test_each_service_is_configured_like_its_settings_expect(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka_env = environment(services["kafka"])
    internal = dict(
        listener.split("://") for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for name in SERVICES:
        service = services[name]
        env = environment(service)
        assert service["build"]["args"]["SERVICE"] == name
        assert service["image"] == f"accord-{name}:dev"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == internal
        assert env["ACCORD_CREATE_TOPICS"] == "false", "kafka-init creates them"
        assert "@postgres:5432/accord" in env["DATABASE_URL"]
        assert service["ports"] == [f"127.0.0.1:{PORTS[name]}:{PORTS[name]}"]
        depends = service["depends_on"]
        assert depends["kafka-init"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        budget = float(env["ACCORD_SHUTDOWN_TIMEOUT_S"]) + PRODUCER_CLOSE_S
        assert seconds(service["stop_grace_period"]) >= budget


def test_the_compose_kafka_is_the_broker_the_tests_run() -> None:
    pom = (ROOT / deploy_files.KAFKA_POM).read_text()
    pinned = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert pinned is not None, "deploy/kafka/pom.xml names the Kafka version as a property"
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{pinned.group(1)}"


def test_the_compose_broker_is_laid_out_as_the_suite_s_one_node(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert env_files(kafka) == [ROOT / deploy_files.COMPOSE_BROKER_ENV_FILE]
    generated = read_env_file(ROOT / deploy_files.COMPOSE_BROKER_ENV_FILE)
    assert not generated.keys() & kafka["environment"].keys(), "written by hand over the table"
    settings = {broker_property(k): v for k, v in environment(kafka).items()}
    assert broker_config(COMPOSE).items() <= settings.items()
    assert settings["auto.create.topics.enable"] == "false", "kafka-init creates the topics"
    assert settings["process.roles"] == "broker,controller", "the property names convert"


def test_the_services_use_apache_kafka_s_profile_and_the_compose_layout(
    compose: dict[str, Any],
) -> None:
    generated = read_env_file(ROOT / deploy_files.COMPOSE_SERVICES_ENV_FILE)
    for name in SERVICES:
        service = compose["services"][name]
        assert ROOT / deploy_files.COMPOSE_SERVICES_ENV_FILE in env_files(service), name
        assert not generated.keys() & service["environment"].keys(), f"{name}: by hand"
        env = environment(service)
        # The profile decides the fetch waits: no override repeats or contradicts it.
        assert not {k for k in env if k.endswith("FETCH_MAX_WAIT_MS")}, name
        settings = ServiceSettings.model_validate(env)
        assert settings.broker_profile == brokers.KAFKA, name
        assert settings.topic_layout == COMPOSE, name
        assert settings.create_topics is False, name


def test_accord_containers_are_hardened(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if not service.get("image", "").startswith("accord-"):
            continue
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert any(t.startswith("/tmp") for t in service["tmpfs"]), name
        assert "user" not in service, f"{name}: the image's user 10001"


def test_files_mounted_into_containers_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for path in env_files(service, optional=False):
            assert path.is_file(), f"{name}: {path}"
        for source in mounts(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: volume {source}"


def test_authn_starts_with_the_keys_authn_keygen_made(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    from accord.authn.domain.sealing import Keyring
    from accord.authn.settings import AuthnSettings
    from accord.authn.ssf_api import check_transmitter
    from accord.authn.ssf_keys import load_signing_key

    services = compose["services"]
    keygen, authn = services["authn-keygen"], services["authn"]
    assert authn["depends_on"]["authn-keygen"]["condition"] == "service_completed_successfully"
    assert keygen["restart"] == "no"
    made_in = mounts(keygen)["authn-keys"]
    read_from = mounts(authn)["authn-keys"]
    assert "authn-keys:" + read_from + ":ro" in authn["volumes"]
    signing_key = Path(authn["environment"]["ACCORD_SSF_SIGNING_KEY_FILE"])
    assert signing_key.parent == Path(read_from)
    # The entrypoint reads the credential keys from the volume into the environment, then
    # becomes the service (compose turns `$$` into `$`).
    shell = authn["entrypoint"][2].replace("$$", "$")
    assert authn["entrypoint"][:2] == ["/bin/sh", "-c"]
    assert f'ACCORD_AUTHN_CREDENTIAL_KEYS="$(cat {read_from}/authn-credential-keys)"' in shell
    assert shell.endswith("exec accord-service")
    # The key maker, run twice here: keys the service loads, owner-only, never replaced.
    command = keygen["entrypoint"]
    assert command[:2] == ["python", "-c"]
    script = command[2].replace(made_in, str(tmp_path))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert first.keys() == {signing_key.name, "authn-credential-keys"}
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name
    keyring = Keyring.parse((tmp_path / "authn-credential-keys").read_text())
    assert keyring.key_ids == ("k1",)
    signer = load_signing_key(tmp_path / signing_key.name)
    assert signer is not None
    # Its Shared Signals issuer is plain http on this machine: allowed, for development.
    wanted = ("ACCORD_AUTHN_PUBLIC_URL", "ACCORD_SSF_ALLOW_HTTP")
    settings = AuthnSettings.model_validate({k: authn["environment"].get(k) for k in wanted})
    check_transmitter(settings, signer)


def load_create_topics() -> ModuleType:
    """deploy/compose/create_topics.py, the kafka-init script."""
    path = ROOT / "deploy" / "compose" / "create_topics.py"
    spec = importlib.util.spec_from_file_location("create_topics", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kafka_init_creates_the_registry_s_topics(compose: dict[str, Any]) -> None:
    init = compose["services"]["kafka-init"]
    assert init["entrypoint"] == ["python", "/accord/compose/create_topics.py"]
    assert "./deploy/compose:/accord/compose:ro" in init["volumes"]
    topics = load_create_topics().read_topics(ROOT / "deploy" / "compose" / "topics.txt")
    assert sorted(t.name for t in topics) == sorted(REGISTRY.topics(with_dlq=True))
    assert {t.replication_factor for t in topics} == {1}, "one Kafka node"
    for topic in topics:
        assert topic.num_partitions == COMPOSE.partitions
        assert topic.replication_factor == COMPOSE.replicas
        assert topic.topic_configs == COMPOSE.config(topic.name)


def test_kafka_init_refuses_a_topic_config_it_cannot_read(tmp_path: Path) -> None:
    listed = tmp_path / "topics.txt"
    listed.write_text("# a comment\nuser.created 3 1 retention.ms=1000 compact\n")
    with pytest.raises(ValueError, match="key=value"):
        load_create_topics().read_topics(listed)


def test_the_demo_target_and_rules_load_and_agree(compose: dict[str, Any]) -> None:
    services = compose["services"]
    targets_file = ROOT / "deploy" / "compose" / "targets.yaml"
    targets = load_yaml_model(targets_file, TargetsFile, ValueError).targets
    rules = load_yaml_model(ROOT / "deploy" / "compose" / "birthright.yaml", Birthright, ValueError)
    assert rules.unknown_attributes() == []
    assert {t for rule in rules.rules for t in rule.targets} <= {t.name for t in targets}
    (demo,) = targets
    assert demo.url.startswith("http://scim-demo:8710")
    token = services["provisioner"]["environment"][demo.token_env]
    assert f"--bearer-token={token}" in services["scim-demo"]["entrypoint"]


def test_grafana_gets_the_auditor_dashboard_and_prometheus_the_metrics(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    prometheus = yaml.safe_load((ROOT / "deploy/compose/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(jobs) == {f"accord-{name}" for name in PORTS}
    for name, port in PORTS.items():
        job = jobs[f"accord-{name}"]
        assert job["metrics_path"] == "/metrics"
        assert job["static_configs"][0]["targets"] == [f"{name}:{port}"]
    token_files = {job["authorization"]["credentials_file"] for job in jobs.values()}
    (token_file,) = token_files
    token_path = Path(token_file)
    assert mounts(services["prometheus"])["prometheus-token"] == str(token_path.parent)
    assert str(token_path.name) in " ".join(services["prometheus-token"]["entrypoint"])
    dashboard = mounts(services["grafana"])["./deploy/grafana/accord-auditor-dashboard.json"]
    provider = yaml.safe_load((ROOT / "deploy/compose/grafana/dashboards/accord.yaml").read_text())
    assert Path(dashboard).parent == Path(provider["providers"][0]["options"]["path"])
    datasource = yaml.safe_load(
        (ROOT / "deploy/compose/grafana/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090"


def test_the_orchestrator_gets_a_workflows_folder_and_a_mail_catcher(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    orchestrator = services["orchestrator"]
    env = environment(orchestrator)
    source = next(
        s for s, target in mounts(orchestrator).items() if target == env["ACCORD_WORKFLOWS_DIR"]
    )
    assert f"{source}:{env['ACCORD_WORKFLOWS_DIR']}:ro" in orchestrator["volumes"]
    # Shipped empty of workflows: the orchestrator runs the shipped ones (its README is skipped).
    assert read_folder(ROOT / source) == {}
    smtp = SmtpSettings.model_validate(env)  # the orchestrator's own validation
    catcher = services[smtp.host]
    assert catcher["image"].startswith("axllent/mailpit:")
    assert smtp.effective_port == 1025, "mailpit's SMTP port inside the network"
    assert orchestrator["depends_on"][smtp.host]["condition"] == "service_started"
    assert smtp.username is None, "mailpit takes no AUTH"


def test_the_sources_service_reads_its_sources_file_and_the_exports_read_only(
    compose: dict[str, Any],
) -> None:
    sources = compose["services"]["sources"]
    settings = SourcesSettings.model_validate(environment(sources))
    assert settings.sources_file is not None
    mounted = {target: source for source, target in mounts(sources).items()}
    file_source = mounted[str(settings.sources_file)]
    assert f"{file_source}:{settings.sources_file}:ro" in sources["volumes"]
    # Shipped with no source (the service keeps its view of the identities only); it loads
    # with the service's own loader, as the service reads it at start.
    assert load_sources((ROOT / file_source).read_text()).sources == ()
    exports = next(s for s in mounts(sources) if s.endswith("/exports"))
    assert f"{exports}:{mounts(sources)[exports]}:ro" in sources["volumes"]
    assert mounts(sources)[exports] in (ROOT / file_source).read_text(), "the example reads it"
    # The secrets its sources name come from an optional file nobody commits, nor do exports.
    (local,) = set(env_files(sources)) - set(env_files(sources, optional=False))
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert str(local.relative_to(ROOT)) in ignored
    assert f"{exports.removeprefix('./')}/*" in ignored


def test_an_smtp_login_is_never_in_a_checked_in_file(compose: dict[str, Any]) -> None:
    orchestrator = compose["services"]["orchestrator"]
    (local,) = set(env_files(orchestrator)) - set(env_files(orchestrator, optional=False))
    assert env_files(orchestrator)[-1] == local, "read last: a real relay's settings win"
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert str(local.relative_to(ROOT)) in ignored
    for service in compose["services"].values():
        assert not {"ACCORD_SMTP_USERNAME", "ACCORD_SMTP_PASSWORD"} & environment(service).keys()


def dockerfile() -> str:
    """The Dockerfile, continuation lines joined."""
    return DOCKERFILE.read_text().replace("\\\n", " ")


def test_the_image_is_multi_stage_pinned_and_non_root() -> None:
    text = dockerfile()
    bases = re.findall(r"^ARG (PYTHON_IMAGE|UV_IMAGE)=(\S+)$", text, re.MULTILINE)
    assert dict(bases).keys() == {"PYTHON_IMAGE", "UV_IMAGE"}
    for _, image in bases:
        assert re.search(r":\d+\.\d+\.\d+", image), f"{image}: pin an exact version"
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.MULTILINE)
    assert [s for _, s in stages] == ["uv", "builder", "runtime"]
    assert re.search(
        r"uv sync --frozen --no-dev --no-editable --package \"accord-\$SERVICE\"", text
    )
    assert "COPY --from=builder /app/.venv /app/.venv" in text
    runtime = text.split(" AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "useradd --system --uid 10001" in runtime
    assert 'ENTRYPOINT ["/app/.venv/bin/accord-service"]' in runtime


def test_the_build_context_keeps_what_the_build_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("uv.lock", "pyproject.toml", "libs", "services", "README.md", "**/README.md"):
        assert needed not in ignored
    assert {".venv", ".git", ".accord", "*.pem"} <= ignored


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[int]:
    """A local server answering /healthz, on a free port."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_health_check_asks_healthz_on_the_service_s_port(healthz_server: int) -> None:
    match = re.search(r"^HEALTHCHECK .*CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    assert match is not None
    command = json.loads(match.group(1))
    assert command[:2] == ["python", "-c"]
    code = command[2]
    defaults = dict(re.findall(r"'(\w+)': (\d+)", code))
    assert {k: int(v) for k, v in defaults.items()} == PORTS
    env = {"ACCORD_SERVICE": "authz", "ACCORD_AUTHZ_PORT": str(healthz_server)}
    ok = subprocess.run([sys.executable, "-c", code], env=env, timeout=20, check=False)
    assert ok.returncode == 0
    env["ACCORD_AUTHZ_PORT"] = "1"  # nothing listens there
    down = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=20, check=False
    )
    assert down.returncode != 0
