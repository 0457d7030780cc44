"""deploy/k8s: every overlay renders, validates against the Kubernetes schemas (offline), and
keeps the promises the services depend on (probes, security, shutdown, Kafka access).

Built-in kinds are validated with kubernetes-validate's bundled schemas, strictly (unknown
fields fail), for the oldest Kubernetes the manifests support and the newest bundled. The
Strimzi and CloudNativePG custom resources have no schemas here (their CRDs are not bundled
offline), so they are checked structurally: apiVersion, kind and the fields the operators
require, and how they fit together with the Deployments.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from accord.events import REGISTRY, brokers
from accord.events.topic_layout import KUBERNETES, broker_config
from accord.orchestrator.adapters.smtp import SmtpSettings
from accord.orchestrator.domain.birthright import Birthright
from accord.orchestrator.workflows.loader import SUFFIXES
from accord.provisioner.targets import TargetsFile, TargetsFileError
from accord.runtime.config_file import load_yaml_model
from accord.runtime.settings import ServiceSettings
from accord.sources.config import load_sources
from accord.stack import deploy_files, kafka_acls
from accord.stack.platform import SERVICES

from .conftest import PORTS, PRODUCER_CLOSE_S, ROOT, Manifest, of_kind

OLDEST_KUBERNETES = "1.31"
"""The oldest release the manifests target (preStop `sleep` needs 1.30; CloudNativePG 1.31)."""
CUSTOM_API_GROUPS = {"kafka.strimzi.io/v1", "postgresql.cnpg.io/v1"}
LAYOUTS = {"prod": KUBERNETES, "external": KUBERNETES, "dev": deploy_files.DEV}
"""How each overlay lays its topics out: prod as the three-broker fault test ran."""
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    # kubernetes-validate reads its 1.8 MB definitions file again for every document.
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.cache(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield


def container(deployment: Manifest) -> Manifest:
    """The one container of an Accord Deployment."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Manifest = containers[0]
    return result


def env_of(deployment: Manifest, docs: list[Manifest]) -> dict[str, Any]:
    """The container's environment: literal values, and the valueFrom of the others."""
    env: dict[str, Any] = {}
    configmaps = of_kind(docs, "ConfigMap")
    for source in container(deployment).get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in container(deployment).get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def with_operators(docs: list[Manifest]) -> bool:
    """Whether the overlay runs Kafka and PostgreSQL itself (not `external`)."""
    return bool(of_kind(docs, "Kafka"))


def deployments(docs: list[Manifest]) -> dict[str, Manifest]:
    """The six services' Deployments, by service."""
    found = of_kind(docs, "Deployment")
    return {service: found[f"accord-{service}"] for service in SERVICES}


def test_every_built_in_resource_matches_the_kubernetes_schemas(
    manifests: list[Manifest],
) -> None:
    checked = 0
    for doc in manifests:
        if doc["apiVersion"] in CUSTOM_API_GROUPS:
            continue
        for version in (OLDEST_KUBERNETES, kubernetes_validate.latest_version()):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(p) for p in error.path)
                pytest.fail(
                    f"{doc['kind']}/{doc['metadata']['name']} ({version}) at {where}: "
                    f"{error.message}"
                )
        checked += 1
    assert checked >= 25


def test_the_validation_would_catch_a_mistake(rendered: dict[str, list[Manifest]]) -> None:
    deployment = deployments(rendered["prod"])["authz"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    container(broken)["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, OLDEST_KUBERNETES, strict=True)


def test_only_known_kinds_are_rendered(manifests: list[Manifest]) -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in manifests}
    custom = {k for k in kinds if k[0] in CUSTOM_API_GROUPS}
    assert (
        custom == set()
        if not with_operators(manifests)
        else custom
        == {
            ("kafka.strimzi.io/v1", "Kafka"),
            ("kafka.strimzi.io/v1", "KafkaNodePool"),
            ("kafka.strimzi.io/v1", "KafkaTopic"),
            ("kafka.strimzi.io/v1", "KafkaUser"),
            ("postgresql.cnpg.io/v1", "Cluster"),
        }
    )
    names = [(d["kind"], d["metadata"]["name"]) for d in manifests]
    assert len(names) == len(set(names)), "a resource is rendered twice"
    namespaces = {d["metadata"].get("namespace") for d in manifests if d["kind"] != "Namespace"}
    assert len(namespaces) == 1, "one namespace for everything"
    assert None not in namespaces


def test_every_service_is_probed_on_its_real_endpoints_and_port(
    manifests: list[Manifest],
) -> None:
    services = of_kind(manifests, "Service")
    for name, deployment in deployments(manifests).items():
        c = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": PORTS[name]}
        assert env_of(deployment, manifests)[f"ACCORD_{name.upper()}_PORT"] == str(PORTS[name])
        probes = {kind: c[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
        assert probes["livenessProbe"]["path"] == "/healthz"
        assert probes["readinessProbe"]["path"] == "/readyz"
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
        for probe in [*probes.values(), c["startupProbe"]["httpGet"]]:
            assert ports[probe["port"]] == PORTS[name]
        service = services[f"accord-{name}"]
        assert service["spec"]["ports"][0]["port"] == PORTS[name]
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert service["spec"]["selector"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def test_every_pod_runs_restricted(manifests: list[Manifest]) -> None:
    for deployment in of_kind(manifests, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            security = c["securityContext"]
            assert security["runAsNonRoot"] is True
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys()
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, "a writable /tmp (faust's data folder, temp files)"
    namespace = next(iter(of_kind(manifests, "Namespace").values()))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_grace_period_covers_the_graceful_shutdown(manifests: list[Manifest]) -> None:
    for deployment in deployments(manifests).values():
        pod = deployment["spec"]["template"]["spec"]
        shutdown = float(env_of(deployment, manifests)["ACCORD_SHUTDOWN_TIMEOUT_S"])
        pre_stop = container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + shutdown + PRODUCER_CLOSE_S


def test_each_service_has_its_account_budget_and_policies(manifests: list[Manifest]) -> None:
    accounts = of_kind(manifests, "ServiceAccount")
    budgets = of_kind(manifests, "PodDisruptionBudget")
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
    for name, deployment in deployments(manifests).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        account = accounts[deployment["spec"]["template"]["spec"]["serviceAccountName"]]
        assert account["automountServiceAccountToken"] is False
        budget = budgets[f"accord-{name}"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        policies = [
            p
            for p in of_kind(manifests, "NetworkPolicy").values()
            if p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        ]
        assert any(p["metadata"]["name"] == "accord-default-deny" for p in policies)
        assert any(
            "Egress" in p["spec"]["policyTypes"] for p in policies if p["spec"].get("egress")
        )
    assert set(autoscalers) == {"accord-provisioner", "accord-auditor"}
    partitions = min(
        [t["spec"]["partitions"] for t in of_kind(manifests, "KafkaTopic").values()]
        or [deploy_files.KUBERNETES.partitions]  # external: the topics.txt you created
    )
    for name, autoscaler in autoscalers.items():
        assert autoscaler["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in of_kind(manifests, "Deployment")[name]["spec"]
        assert autoscaler["spec"]["maxReplicas"] <= partitions, "idle consumers beyond that"


def test_services_reach_kafka_and_postgres_with_the_operators_secrets(
    manifests: list[Manifest],
) -> None:
    # The Secrets are the operators' (Strimzi: the KafkaUser's and the cluster CA's;
    # CloudNativePG: <cluster>-app), or made by hand with the same names (external).
    cluster, database = "accord", "accord-db"
    kafka = next(iter(of_kind(manifests, "Kafka").values()), None)
    if kafka is not None:
        cluster = kafka["metadata"]["name"]
        database = next(iter(of_kind(manifests, "Cluster")))
        tls = next(ln for ln in kafka["spec"]["kafka"]["listeners"] if ln["tls"])
        assert tls["authentication"]["type"] == "scram-sha-512"
    for name, deployment in deployments(manifests).items():
        env = env_of(deployment, manifests)
        if kafka is not None:
            assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{cluster}-kafka-bootstrap:{tls['port']}"
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["ACCORD_CREATE_TOPICS"] == "false"
        assert env["ACCORD_BROKER"] == "kafka"
        assert env["KAFKA_SASL_USERNAME"] == f"accord-{name}"
        assert env["KAFKA_SASL_PASSWORD"]["secretKeyRef"] == {
            "name": env["KAFKA_SASL_USERNAME"],  # Strimzi names the Secret after the user
            "key": "password",
        }
        assert env["DATABASE_URL"]["secretKeyRef"] == {"name": f"{database}-app", "key": "uri"}
        pod = deployment["spec"]["template"]["spec"]
        ca = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")
        assert ca["secret"]["secretName"] == f"{cluster}-cluster-ca-cert"
        mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert env["KAFKA_SSL_CAFILE"] == f"{mounts['kafka-ca']}/ca.crt"


def test_files_the_services_read_are_mounted(manifests: list[Manifest]) -> None:
    # (service, variable, file name or None for a folder, Secret or None for a ConfigMap)
    wanted = [
        ("orchestrator", "ACCORD_BIRTHRIGHT_FILE", "birthright.yaml", None),
        ("provisioner", "ACCORD_TARGETS_FILE", "targets.yaml", None),
        ("authz", "ACCORD_POLICY_DIR", None, None),
        ("auditor", "ACCORD_AUDIT_SIGNING_KEY_FILE", "audit.pem", "accord-audit-signing-key"),
        ("authn", "ACCORD_SSF_SIGNING_KEY_FILE", "ssf.pem", "accord-ssf-signing-key"),
        ("authn", "ACCORD_SSF_TRANSMITTERS_FILE", "ssf-transmitters.yaml", None),
        ("sources", "ACCORD_SOURCES_FILE", "sources.yaml", None),
    ]
    assert {name for name, *_ in wanted} == set(SERVICES)
    configmaps = of_kind(manifests, "ConfigMap")
    for name, variable, file_name, secret in wanted:
        deployment = deployments(manifests)[name]
        path = Path(env_of(deployment, manifests)[variable])
        folder = path.parent if file_name else path
        mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
        volume = next(
            v
            for v in deployment["spec"]["template"]["spec"]["volumes"]
            if v["name"] == mounts[str(folder)]
        )
        if secret is None:
            data = configmaps[volume["configMap"]["name"]]["data"]
            assert (file_name or "default.cedar") in data
        else:
            assert volume["secret"]["secretName"] == secret
            assert "items" not in volume["secret"], f"{name}: the key is named {file_name}"
    checkpoints = Path(
        env_of(deployments(manifests)["auditor"], manifests)["ACCORD_AUDIT_CHECKPOINT_DIR"]
    )
    auditor_mounts = {
        m["mountPath"] for m in container(deployments(manifests)["auditor"])["volumeMounts"]
    }
    assert str(checkpoints) in auditor_mounts, "checkpoints go to a volume, not the image"


def test_the_configmaps_load_with_the_services_own_loaders(
    manifests: list[Manifest], tmp_path: Path
) -> None:
    configmaps = of_kind(manifests, "ConfigMap")
    targets_data = next(c for n, c in configmaps.items() if n.startswith("accord-targets"))
    birthright_data = next(c for n, c in configmaps.items() if n.startswith("accord-birthright"))
    (tmp_path / "targets.yaml").write_text(targets_data["data"]["targets.yaml"])
    (tmp_path / "birthright.yaml").write_text(birthright_data["data"]["birthright.yaml"])
    targets = load_yaml_model(tmp_path / "targets.yaml", TargetsFile, TargetsFileError)
    rules = load_yaml_model(tmp_path / "birthright.yaml", Birthright, ValueError)
    assert rules.unknown_attributes() == []
    named = {t.name for t in targets.targets}
    assert {t for rule in rules.rules for t in rule.targets} <= named
    sources_data = next(c for n, c in configmaps.items() if n.startswith("accord-sources"))
    # Shipped with no source: the service only keeps its view of the identities.
    assert load_sources(sources_data["data"]["sources.yaml"]).sources == ()
    policies = configmaps["accord-policies"]["data"]
    for file_name in deploy_files.POLICY_FILES:
        shipped = ROOT / deploy_files.POLICY_SOURCE / file_name
        assert policies[file_name] == shipped.read_text()


def test_topics_are_the_registry_s_and_fit_the_cluster(manifests: list[Manifest]) -> None:
    if not with_operators(manifests):
        pytest.skip("an existing Kafka: topics are created ahead as topics.yaml says")
    topics = of_kind(manifests, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics.values()) == sorted(
        REGISTRY.topics(with_dlq=True)
    )
    pools = of_kind(manifests, "KafkaNodePool").values()
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    kafka = next(iter(of_kind(manifests, "Kafka").values()))
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] <= brokers
    assert config["offsets.topic.replication.factor"] <= brokers
    assert config["min.insync.replicas"] <= config["default.replication.factor"]
    for name, topic in topics.items():
        assert DNS_NAME.match(name)
        assert len(name) <= 253
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["partitions"] >= 1
        assert 1 <= topic["spec"]["replicas"] <= brokers
        assert topic["spec"]["config"]["min.insync.replicas"] <= topic["spec"]["replicas"]
    env = env_of(deployments(manifests)["auditor"], manifests)
    assert int(env["ACCORD_TOPIC_REPLICATION"]) <= brokers, "the aggregates' own topics"


@pytest.mark.parametrize("overlay", sorted(LAYOUTS))
def test_each_overlay_is_laid_out_as_its_layout_says(
    overlay: str, rendered: dict[str, list[Manifest]]
) -> None:
    docs, layout = rendered[overlay], LAYOUTS[overlay]
    for name, deployment in deployments(docs).items():
        env = env_of(deployment, docs)
        # The profile decides the fetch waits: no override repeats or contradicts it.
        assert not {k for k in env if k.endswith("FETCH_MAX_WAIT_MS")}, name
        literals = {k: v for k, v in env.items() if isinstance(v, str)}  # not secretKeyRefs
        settings = ServiceSettings.model_validate(literals)
        assert settings.broker_profile == brokers.KAFKA, name
        assert settings.topic_layout == layout, name
        assert settings.create_topics is False, name
    if not with_operators(docs):
        return
    pools = of_kind(docs, "KafkaNodePool").values()
    brokers_running = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers_running == layout.replicas, "a broker per copy, as the layout was tested"
    (kafka,) = of_kind(docs, "Kafka").values()
    config = {key: str(value).lower() for key, value in kafka["spec"]["kafka"]["config"].items()}
    assert broker_config(layout).items() <= config.items()
    pom = (ROOT / deploy_files.KAFKA_POM).read_text()
    assert f"<kafka.version>{kafka['spec']['kafka']['version']}</kafka.version>" in pom
    for topic in of_kind(docs, "KafkaTopic").values():
        spec = topic["spec"]
        assert (spec["partitions"], spec["replicas"]) == (layout.partitions, layout.replicas)
        assert {k: str(v) for k, v in spec["config"].items()} == layout.config(spec["topicName"])


def test_the_strimzi_and_cloudnativepg_resources_have_what_the_operators_need(
    manifests: list[Manifest],
) -> None:
    if not with_operators(manifests):
        pytest.skip("an existing Kafka and PostgreSQL: no operator resources")
    (kafka,) = of_kind(manifests, "Kafka").values()
    spec = kafka["spec"]
    assert "zookeeper" not in spec, "KRaft only"
    for listener in spec["kafka"]["listeners"]:
        assert {"name", "port", "type", "tls"} <= listener.keys()
    assert spec["kafka"]["authorization"]["type"] == "simple"
    assert spec["kafka"]["config"]["auto.create.topics.enable"] is False
    assert {"topicOperator", "userOperator"} <= spec["entityOperator"].keys()
    pools = of_kind(manifests, "KafkaNodePool").values()
    roles = {role for p in pools for role in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    for pool in pools:
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert pool["spec"]["replicas"] >= 1
        assert pool["spec"]["storage"]["type"] in {"jbod", "persistent-claim", "ephemeral"}
    for user in of_kind(manifests, "KafkaUser").values():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert user["spec"]["authorization"]["type"] == "simple"
        for acl in user["spec"]["authorization"]["acls"]:
            assert "operation" not in acl, "removed in kafka.strimzi.io/v1: use operations"
            assert acl["operations"]
            assert acl["resource"]["type"] in {"topic", "group"}
            assert acl["resource"]["patternType"] in {"literal", "prefix"}
    (database,) = of_kind(manifests, "Cluster").values()
    assert database["spec"]["instances"] >= 1
    assert database["spec"]["storage"]["size"]
    initdb = database["spec"]["bootstrap"]["initdb"]
    assert initdb["database"] == "accord"
    assert initdb["owner"] == "accord"


def grants(user: Manifest) -> set[tuple[str, str, str, str]]:
    """(resource type, name, pattern, operation) of every ACL rule of a KafkaUser."""
    return {
        (acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], op)
        for acl in user["spec"]["authorization"]["acls"]
        for op in acl["operations"]
    }


def test_each_kafka_user_may_do_exactly_what_its_service_needs(
    manifests: list[Manifest],
) -> None:
    service_users = {
        env_of(d, manifests)["KAFKA_SASL_USERNAME"] for d in deployments(manifests).values()
    }
    assert service_users == {access.principal for access in kafka_acls.SERVICES}
    if not with_operators(manifests):
        pytest.skip("an existing Kafka: its ACLs are set as docs/deployment.md's table says")
    users = of_kind(manifests, "KafkaUser")
    assert set(users) == {access.principal for access in kafka_acls.principals()}
    for access in kafka_acls.principals():
        granted = grants(users[access.principal])
        expected = {("topic", t, "literal", "Read") for t in access.all_reads}
        expected |= {("topic", t, "literal", "Describe") for t in access.all_reads}
        expected |= {("topic", t, "literal", "Write") for t in access.all_writes}
        expected |= {("topic", t, "literal", "Describe") for t in access.all_writes}
        expected |= {("group", g, "literal", "Read") for g in access.groups}
        for prefix in access.owned_prefixes:
            expected |= {("topic", prefix, "prefix", op) for op in kafka_acls.OPERATIONS}
        assert granted == expected, access.principal
        for kind, name, pattern, _ in granted:
            assert name != "*", "no wildcards"
            assert kind != "cluster", "nothing cluster-wide"
            if pattern == "prefix":
                assert name in access.owned_prefixes


def test_the_dev_overlay_fits_one_node(rendered: dict[str, list[Manifest]]) -> None:
    dev = rendered["dev"]
    (pool,) = of_kind(dev, "KafkaNodePool").values()
    assert pool["spec"]["replicas"] == 1
    assert {t["spec"]["replicas"] for t in of_kind(dev, "KafkaTopic").values()} == {1}
    (database,) = of_kind(dev, "Cluster").values()
    assert database["spec"]["instances"] == 1
    auditor = deployments(dev)["auditor"]
    key = next(
        v
        for v in auditor["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "audit-signing-key"
    )
    assert key["secret"]["optional"] is True
    demo = of_kind(dev, "Deployment")["accord-scim-demo"]
    assert container(demo)["securityContext"]["readOnlyRootFilesystem"] is True


def test_authn_gets_its_keys_from_secrets_and_its_public_address(
    manifests: list[Manifest],
) -> None:
    authn = deployments(manifests)["authn"]
    env = env_of(authn, manifests)
    assert env["ACCORD_AUTHN_CREDENTIAL_KEYS"]["secretKeyRef"] == {
        "name": "accord-authn-credential-keys",
        "key": "keys",
    }
    for configmap in of_kind(manifests, "ConfigMap").values():
        assert "ACCORD_AUTHN_CREDENTIAL_KEYS" not in configmap.get("data", {})
    secrets = of_kind(manifests, "Secret")
    assert not [n for n in secrets if n.startswith(("accord-authn", "accord-ssf"))], (
        "authn's keys are never in the manifests"
    )
    public = env["ACCORD_AUTHN_PUBLIC_URL"]
    origins = env["ACCORD_WEBAUTHN_ORIGINS"].split(",")
    assert public.startswith("https://") or public.startswith("http://localhost")
    # Shared Signals refuses a plain http issuer unless development says so.
    assert public.startswith("https://") or env.get("ACCORD_SSF_ALLOW_HTTP") == "true"
    assert all(o.startswith("https://") or o.startswith("http://localhost") for o in origins)
    assert env["ACCORD_WEBAUTHN_RP_ID"]


def test_authn_is_reachable_from_outside_and_reaches_https(manifests: list[Manifest]) -> None:
    labels = deployments(manifests)["authn"]["spec"]["template"]["metadata"]["labels"]
    policies = [
        p
        for p in of_kind(manifests, "NetworkPolicy").values()
        if p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
    ]
    ingress_from = [
        peer.get("ipBlock", {}).get("cidr")
        for p in policies
        for rule in p["spec"].get("ingress", [])
        if {"port": "http", "protocol": "TCP"} in rule.get("ports", [])
        for peer in rule.get("from", [])
    ]
    assert "0.0.0.0/0" in ingress_from, "identity providers push SETs from outside"
    https_out = [
        peer["ipBlock"]
        for p in policies
        for rule in p["spec"].get("egress", [])
        if {"port": 443, "protocol": "TCP"} in rule.get("ports", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    assert any(b["cidr"] == "0.0.0.0/0" for b in https_out), "SETs pushed to receivers"


def test_no_pod_may_reach_link_local_addresses(manifests: list[Manifest]) -> None:
    # The cloud metadata service answers there; the provisioner refuses such targets too.
    for policy in of_kind(manifests, "NetworkPolicy").values():
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                block = peer.get("ipBlock")
                if block and block["cidr"] == "0.0.0.0/0":
                    assert "169.254.0.0/16" in block["except"], policy["metadata"]["name"]
                if block and block["cidr"] == "::/0":
                    assert "fe80::/10" in block["except"], policy["metadata"]["name"]


def test_the_orchestrator_reads_its_workflows_from_a_mounted_configmap(
    manifests: list[Manifest],
) -> None:
    orchestrator = deployments(manifests)["orchestrator"]
    folder = env_of(orchestrator, manifests)["ACCORD_WORKFLOWS_DIR"]
    mount = next(m for m in container(orchestrator)["volumeMounts"] if m["mountPath"] == folder)
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount never sees the ConfigMap change"
    volume = next(
        v for v in orchestrator["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    name = volume["configMap"]["name"]
    assert name == "accord-workflows", "no hash suffix: an edit is reloaded in place"
    files = of_kind(manifests, "ConfigMap")[name].get("data", {})
    assert all(f.endswith(SUFFIXES) for f in files), "only workflow files: the rest is ignored"


def test_the_orchestrator_s_smtp_relay_is_configured_and_its_login_a_secret(
    manifests: list[Manifest],
) -> None:
    orchestrator = deployments(manifests)["orchestrator"]
    env = env_of(orchestrator, manifests)
    for variable, key in (
        ("ACCORD_SMTP_USERNAME", "username"),
        ("ACCORD_SMTP_PASSWORD", "password"),
    ):
        assert env[variable]["secretKeyRef"] == {
            "name": "accord-smtp-credentials",
            "key": key,
            "optional": True,  # a relay without AUTH needs no Secret
        }
    literals = {k: v for k, v in env.items() if k.startswith("ACCORD_SMTP_") and isinstance(v, str)}
    assert {"ACCORD_SMTP_HOST", "ACCORD_SMTP_PORT", "ACCORD_SMTP_FROM"} <= literals.keys()
    smtp = SmtpSettings.model_validate(literals)  # the orchestrator's own validation
    for configmap in of_kind(manifests, "ConfigMap").values():
        assert (
            not {"ACCORD_SMTP_USERNAME", "ACCORD_SMTP_PASSWORD"} & configmap.get("data", {}).keys()
        )
    assert "accord-smtp-credentials" not in of_kind(manifests, "Secret"), "made by you, never here"
    # The network policies let the orchestrator reach the relay's port.
    labels = orchestrator["spec"]["template"]["metadata"]["labels"]
    egress_ports = {
        port["port"]
        for policy in of_kind(manifests, "NetworkPolicy").values()
        if policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }
    assert smtp.effective_port in egress_ports
    service = of_kind(manifests, "Service").get(smtp.host)
    if service is not None:  # the dev overlay's mail catcher
        assert smtp.effective_port in {p["port"] for p in service["spec"]["ports"]}
        assert smtp.security == "none"
    else:
        assert smtp.security != "none", "clear text only to a catcher inside the cluster"


def test_the_sources_service_gets_its_secrets_exports_and_readers_ports(
    manifests: list[Manifest],
) -> None:
    sources = deployments(manifests)["sources"]
    # The variables sources.yaml names come from a Secret you create, optional while no
    # source needs one; never from a ConfigMap of the manifests.
    refs = [s["secretRef"] for s in container(sources)["envFrom"] if "secretRef" in s]
    assert refs == [{"name": "accord-source-credentials", "optional": True}]
    assert "accord-source-credentials" not in of_kind(manifests, "Secret"), "made by you"
    mounts = {m["mountPath"]: m for m in container(sources)["volumeMounts"]}
    assert mounts["/srv/exports"]["readOnly"] is True, "a source never writes an export"
    assert sources["spec"]["replicas"] == 1, "runs are serialised: a second pod only waits"
    labels = sources["spec"]["template"]["metadata"]["labels"]
    egress_ports = {
        port["port"]
        for policy in of_kind(manifests, "NetworkPolicy").values()
        if policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }
    assert {389, 636, 5432, 3306, 443} <= egress_ports, "LDAP, PostgreSQL, MariaDB, SCIM"
