"""`accord deploy`: the files it generates from the registry, and its drift check."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from accord.events import REGISTRY, topics
from accord.events.catalogue import CATALOGUE, EventData
from accord.events.registry import Registry
from accord.events.topic_layout import COMPOSE, KUBERNETES, TopicSettings
from accord.stack import deploy_files, kafka_acls

REPO = Path(__file__).resolve().parents[4]
DOC_WITH_MARKERS = (
    f"# Somewhere\n\n## Deploying\n\n{deploy_files.ACL_BEGIN}\nold table\n"
    f"{deploy_files.ACL_END}\n\n## Next\n"
)


POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <properties><kafka.version>{version}</kafka.version></properties>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-clients</artifactId>
      <version>3.0.0</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{dependency}</version>
    </dependency>
  </dependencies>
</project>
"""
COMPOSE_WITH_IMAGE = """services:
  kafka:
    image: apache/kafka:4.0.0
    environment:
      KAFKA_NODE_ID: 1
  postgres:
    image: postgres:18.1-bookworm
"""
KAFKA_WITH_MARKERS = f"""apiVersion: kafka.strimzi.io/v1
kind: Kafka
metadata:
  name: accord
spec:
  kafka:
    # hand-written, kept
    {deploy_files.BROKER_BEGIN}
    config:
      auto.create.topics.enable: true
    {deploy_files.BROKER_END}
    authorization:
      type: simple
"""


def pom(version: str = "4.1.1", dependency: str = "${kafka.version}") -> str:
    """A pom pinning Kafka as deploy/kafka/pom.xml does."""
    return POM.format(version=version, dependency=dependency)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repository root with what the generator reads: the policies, the Kafka pom, the
    alert rules, the Grafana dashboards, and the hand-written files with a generated part
    (docs/deployment.md, Strimzi Kafka, compose file)."""
    policies = tmp_path / deploy_files.POLICY_SOURCE
    shutil.copytree(REPO / deploy_files.POLICY_SOURCE, policies)
    rules = tmp_path / deploy_files.ALERT_RULES
    rules.parent.mkdir(parents=True)
    shutil.copy(REPO / deploy_files.ALERT_RULES, rules)
    dashboards = tmp_path / deploy_files.DASHBOARDS
    dashboards.mkdir(parents=True)
    for dashboard in (REPO / deploy_files.DASHBOARDS).glob("*.json"):
        shutil.copy(dashboard, dashboards)
    (tmp_path / deploy_files.ACL_TABLE_DOC).parent.mkdir(parents=True)
    (tmp_path / deploy_files.ACL_TABLE_DOC).write_text(DOC_WITH_MARKERS)
    for rel, text in {
        deploy_files.KAFKA_POM: pom(),
        deploy_files.COMPOSE_FILE: COMPOSE_WITH_IMAGE,
        deploy_files.STRIMZI_KAFKA_FILE: KAFKA_WITH_MARKERS,
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_kubernetes_names_replace_underscores_and_keep_the_topic_name() -> None:
    assert deploy_files.resource_name("account.provision_failed") == "account.provision-failed"
    with pytest.raises(ValueError, match="no valid Kubernetes name"):
        deploy_files.resource_name("Not.A.Name")
    failed = next(
        t
        for t in deploy_files.kafka_topics()
        if t["spec"]["topicName"] == topics.ACCOUNT_PROVISION_FAILED
    )
    assert failed["metadata"]["name"] == "account.provision-failed"


def test_every_topic_and_dead_letter_topic_gets_a_kafka_topic() -> None:
    resources = deploy_files.kafka_topics()
    assert sorted(r["spec"]["topicName"] for r in resources) == sorted(
        REGISTRY.topics(with_dlq=True)
    )
    retention = {r["spec"]["topicName"]: r["spec"]["config"]["retention.ms"] for r in resources}
    assert retention[topics.dlq_for(topics.USER_CREATED)] > retention[topics.USER_CREATED]


def test_the_compose_list_names_every_topic_once_with_its_config() -> None:
    lines = [
        line.split()
        for line in deploy_files.compose_topics().splitlines()
        if not line.startswith("#")
    ]
    assert [fields[0] for fields in lines] == deploy_files.topic_names()
    assert {tuple(fields[1:3]) for fields in lines} == {("3", "1")}
    for name, _, _, *config in lines:
        assert dict(c.split("=", 1) for c in config) == COMPOSE.config(name)


def test_broker_settings_become_the_apache_kafka_image_s_variables() -> None:
    assert deploy_files.kafka_env_name("min.insync.replicas") == "KAFKA_MIN_INSYNC_REPLICAS"
    assert deploy_files.kafka_env_name("a_b-c.d") == "KAFKA_A__B___C_D"
    env = deploy_files.compose_broker_env(KUBERNETES)
    lines = [line for line in env.splitlines() if not line.startswith("#")]
    assert lines == [
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE=false",
        "KAFKA_DEFAULT_REPLICATION_FACTOR=3",
        "KAFKA_MIN_INSYNC_REPLICAS=2",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=3",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=3",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=2",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR=3",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR=2",
    ]


def test_the_services_get_apache_kafka_s_profile_and_the_layout() -> None:
    assert deploy_files.services_kafka_settings(TopicSettings.for_replicas(6, 3)) == {
        "ACCORD_BROKER": "kafka",
        "ACCORD_CREATE_TOPICS": "false",
        "ACCORD_TOPIC_PARTITIONS": "6",
        "ACCORD_TOPIC_REPLICATION": "3",
    }
    env = deploy_files.services_env(COMPOSE, "COMPOSE", "somewhere")
    assert env.endswith("ACCORD_TOPIC_PARTITIONS=3\nACCORD_TOPIC_REPLICATION=1\n")
    assert "FETCH_MAX_WAIT" not in env, "the profile decides"


def test_the_strimzi_kafka_gets_typed_settings_and_the_version() -> None:
    settings = deploy_files.strimzi_kafka_settings("4.1.1")
    assert settings["version"] == "4.1.1"
    assert settings["config"]["auto.create.topics.enable"] is False
    assert settings["config"]["min.insync.replicas"] == KUBERNETES.min_insync_replicas
    assert settings["config"]["offsets.topic.replication.factor"] == KUBERNETES.replicas


def test_the_dev_patches_lay_strimzi_out_for_one_node() -> None:
    assert deploy_files.topics_patch(KUBERNETES, deploy_files.DEV) == [
        {"op": "replace", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/config/min.insync.replicas", "value": 1},
    ]
    assert deploy_files.topics_patch(KUBERNETES, KUBERNETES) == []
    patch = deploy_files.dev_kafka_patch()
    assert patch["metadata"]["name"] == deploy_files.STRIMZI_CLUSTER
    assert set(patch["spec"]["kafka"]["config"].values()) == {1}


def test_a_setting_that_differs_per_topic_cannot_be_one_patch() -> None:
    longer_dead_letters = TopicSettings(6, 3, 2, dlq_retention_ms=60 * 24 * 3600 * 1000)
    with pytest.raises(ValueError, match=r"retention\.ms differs from topic to topic"):
        deploy_files.topics_patch(KUBERNETES, longer_dead_letters)
    fewer_partitions = TopicSettings.for_replicas(3, 3)
    assert deploy_files.topics_patch(KUBERNETES, fewer_partitions) == [
        {"op": "replace", "path": "/spec/partitions", "value": 3}
    ]


def test_the_kafka_version_is_read_from_the_pom() -> None:
    assert deploy_files.kafka_version(pom("4.2.0")) == "4.2.0"
    assert deploy_files.kafka_version(pom("9.9.9", dependency="4.1.2")) == "4.1.2"
    assert deploy_files.kafka_version((REPO / deploy_files.KAFKA_POM).read_text()) == "4.1.1"
    with pytest.raises(deploy_files.DeployError, match="no Kafka version"):
        deploy_files.kafka_version(pom(dependency="${missing.version}"))
    with pytest.raises(deploy_files.DeployError, match=r"no org\.apache\.kafka:kafka_2\.13"):
        deploy_files.kafka_version(pom().replace("kafka_2.13", "kafka-tools"))
    with pytest.raises(deploy_files.DeployError, match="no XML"):
        deploy_files.kafka_version("<project>")


def test_a_kafka_user_per_service_and_the_operator() -> None:
    users = {u["metadata"]["name"]: u for u in deploy_files.kafka_users()}
    assert set(users) == {
        "accord-orchestrator",
        "accord-provisioner",
        "accord-authz",
        "accord-auditor",
        "accord-authn",
        "accord-sources",
        "accord-operator",
    }
    provisioner = users["accord-provisioner"]["spec"]["authorization"]["acls"]
    by_name = {acl["resource"]["name"]: acl["operations"] for acl in provisioner}
    assert by_name == {
        "account.drift_detected": ["Describe", "Write"],
        "account.orphan_detected": ["Describe", "Write"],
        "account.provision_failed": ["Describe", "Write"],
        "account.provisioned": ["Describe", "Write"],
        "provision.requested": ["Describe", "Read"],
        "provision.requested.dlq": ["Describe", "Write"],
        "reconciliation.completed": ["Describe", "Write"],
        "accord-provisioner": ["Read"],
    }


def test_the_auditor_reads_every_other_topic_and_owns_its_aggregates_topics() -> None:
    (auditor,) = [a for a in kafka_acls.SERVICES if a.name == "auditor"]
    assert set(auditor.all_reads) == set(REGISTRY.topics(with_dlq=True)) - {
        topics.dlq_for(topics.AUDIT_RECORDED),
        topics.dlq_for(topics.AUDIT_METRICS),
        topics.AUDIT_METRICS,
    }
    assert auditor.groups == ["accord-auditor", "accord-auditor-aggregates"]
    prefixes = [
        acl
        for acl in kafka_acls.strimzi_acls(auditor)
        if acl["resource"]["patternType"] == "prefix"
    ]
    assert prefixes == [
        {
            "resource": {
                "type": "topic",
                "name": "accord-auditor-aggregates-",
                "patternType": "prefix",
            },
            "operations": ["Create", "Describe", "Read", "Write"],
            "host": "*",
        }
    ]


def test_write_then_check_finds_nothing(root: Path) -> None:
    written = deploy_files.write(root)
    assert deploy_files.TOPICS_FILE in written
    assert "docs/deployment.md" in written
    assert deploy_files.drift(root) == []
    assert deploy_files.write(root) == []
    doc = (root / "docs/deployment.md").read_text()
    assert "old table" not in doc
    assert "| `accord-auditor` |" in doc
    assert doc.endswith("## Next\n")
    documents = list(yaml.safe_load_all((root / deploy_files.TOPICS_FILE).read_text()))
    assert len(documents) == len(REGISTRY.topics(with_dlq=True))


def test_write_fills_the_generated_parts_of_hand_written_files(root: Path) -> None:
    deploy_files.write(root)
    compose = yaml.safe_load((root / deploy_files.COMPOSE_FILE).read_text())
    assert compose["services"]["kafka"]["image"] == "apache/kafka:4.1.1"
    assert compose["services"]["postgres"]["image"] == "postgres:18.1-bookworm"
    kafka_yaml = (root / deploy_files.STRIMZI_KAFKA_FILE).read_text()
    assert "    # hand-written, kept\n" in kafka_yaml
    kafka = yaml.safe_load(kafka_yaml)["spec"]["kafka"]
    assert kafka == {
        **deploy_files.strimzi_kafka_settings("4.1.1"),
        "authorization": {"type": "simple"},
    }


EDITS = {
    deploy_files.COMPOSE_BROKER_ENV_FILE: (
        "KAFKA_MIN_INSYNC_REPLICAS=1",
        "KAFKA_MIN_INSYNC_REPLICAS=2",
    ),
    deploy_files.COMPOSE_SERVICES_ENV_FILE: (
        "ACCORD_TOPIC_REPLICATION=1",
        "ACCORD_TOPIC_REPLICATION=3",
    ),
    deploy_files.SERVICES_ENV_FILE: ("ACCORD_TOPIC_PARTITIONS=6", "ACCORD_TOPIC_PARTITIONS=5"),
    deploy_files.DEV_SERVICES_ENV_FILE: (
        "ACCORD_TOPIC_REPLICATION=1",
        "ACCORD_TOPIC_REPLICATION=3",
    ),
    deploy_files.DEV_KAFKA_PATCH: ("min.insync.replicas: 1", "min.insync.replicas: 2"),
    deploy_files.DEV_TOPICS_PATCH: ("value: 1", "value: 2"),
    deploy_files.COMPOSE_TOPICS_FILE: ("min.insync.replicas=1", "min.insync.replicas=2"),
    deploy_files.STRIMZI_KAFKA_FILE: ("min.insync.replicas: 2", "min.insync.replicas: 1"),
}
"""A Kafka setting in each generated file, and an edit of its value by hand."""


@pytest.mark.parametrize("rel", EDITS)
def test_an_edited_kafka_setting_is_drift(root: Path, rel: str) -> None:
    deploy_files.write(root)
    path = root / rel
    text = path.read_text()
    setting, edited = EDITS[rel]
    assert setting in text
    path.write_text(text.replace(setting, edited, 1))
    assert deploy_files.drift(root) == [f"stale: {rel}"]
    path.unlink()
    missing = deploy_files.PARTS.get(rel, rel)
    assert deploy_files.drift(root) == [f"missing: {missing}"]


def test_a_new_kafka_version_makes_the_compose_image_and_strimzi_stale(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_files.write(root)
    (root / deploy_files.KAFKA_POM).write_text(pom("4.2.0"))
    assert deploy_files.drift(root) == [
        f"stale: {deploy_files.STRIMZI_KAFKA_FILE}",
        f"stale: {deploy_files.COMPOSE_FILE} (apache/kafka:4.1.1, but"
        f" {deploy_files.KAFKA_POM} pins 4.2.0)",
    ]
    assert deploy_files.main(["--check", "--root", str(root)]) == 1
    assert "apache/kafka:4.1.1, but deploy/kafka/pom.xml pins 4.2.0" in capsys.readouterr().err
    assert deploy_files.write(root) == [deploy_files.STRIMZI_KAFKA_FILE, deploy_files.COMPOSE_FILE]
    assert "image: apache/kafka:4.2.0\n" in (root / deploy_files.COMPOSE_FILE).read_text()


def test_hand_written_files_without_their_generated_part_are_drift(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_files.write(root)
    (root / deploy_files.COMPOSE_FILE).write_text("services: {}\n")
    kafka = root / deploy_files.STRIMZI_KAFKA_FILE
    kafka.write_text(kafka.read_text().replace(deploy_files.BROKER_END, "# gone"))
    assert deploy_files.drift(root) == [
        f"missing: the broker settings markers in {deploy_files.STRIMZI_KAFKA_FILE}",
        f"missing: one apache/kafka image in {deploy_files.COMPOSE_FILE}",
    ]
    assert deploy_files.main(["--root", str(root)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        f"accord: warning: missing {deploy_files.PARTS[deploy_files.STRIMZI_KAFKA_FILE]}",
        f"accord: warning: missing {deploy_files.PARTS[deploy_files.COMPOSE_FILE]}",
    ]


def test_an_unreadable_pom_fails_in_one_line(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / deploy_files.KAFKA_POM).unlink()
    assert deploy_files.main(["--check", "--root", str(root)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"accord: error: cannot read {deploy_files.KAFKA_POM}: No such file or directory"
    ]


def test_the_dashboards_configmap_holds_each_dashboard_as_it_is(root: Path) -> None:
    deploy_files.write(root)
    configmap = yaml.safe_load((root / deploy_files.DASHBOARDS_FILE).read_text())
    assert configmap["metadata"]["name"] == deploy_files.DASHBOARDS_CONFIGMAP
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboards = sorted((root / deploy_files.DASHBOARDS).glob("*.json"))
    assert "accord-operations-dashboard.json" in [p.name for p in dashboards]
    assert configmap["data"] == {p.name: p.read_text() for p in dashboards}


def test_an_edited_or_new_dashboard_makes_the_configmap_stale(root: Path) -> None:
    deploy_files.write(root)
    folder = root / deploy_files.DASHBOARDS
    edited = folder / "accord-operations-dashboard.json"
    edited.write_text(edited.read_text().replace('"refresh": "30s"', '"refresh": "1m"'))
    assert deploy_files.drift(root) == [f"stale: {deploy_files.DASHBOARDS_FILE}"]
    assert deploy_files.write(root) == [deploy_files.DASHBOARDS_FILE]
    (folder / "z-new.json").write_text('{"uid": "new", "title": "New"}\n')
    assert deploy_files.drift(root) == [f"stale: {deploy_files.DASHBOARDS_FILE}"]
    deploy_files.write(root)
    configmap = yaml.safe_load((root / deploy_files.DASHBOARDS_FILE).read_text())
    assert configmap["data"]["z-new.json"] == '{"uid": "new", "title": "New"}\n'


def test_any_dashboard_text_survives_the_configmap() -> None:
    """A literal block cannot hold trailing spaces: YAML then quotes the text, which still
    reads back as it was."""
    texts = {
        "a.json": '{\n  "uid": "a",\n  "title": "Caf\u00e9 \u2192 ok"\n}\n',
        "b.json": '{"uid": "b", "title": "trailing"}   \n  \n',
        "c.json": '{"uid": "c"}',
    }
    rendered = deploy_files._literal_yaml("# header\n", deploy_files.grafana_dashboards(texts))
    assert rendered.startswith("# header\n")
    assert '  a.json: |\n    {\n      "uid": "a",' in rendered
    assert yaml.safe_load(rendered)["data"] == texts


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "deploy/grafana holds no dashboard"),
        ({"x.json": "{not json"}, "deploy/grafana/x.json is no JSON"),
        ({"x.json": '{"title": "no uid"}'}, "deploy/grafana/x.json is no Grafana dashboard"),
    ],
)
def test_missing_or_broken_dashboards_fail_in_one_line(
    root: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], message: str
) -> None:
    folder = root / deploy_files.DASHBOARDS
    for dashboard in folder.glob("*.json"):
        dashboard.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)
    assert deploy_files.main(["--check", "--root", str(root)]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err.startswith(f"accord: error: {message}")


class PasswordReset(EventData):
    """An event type the registry does not have (yet)."""

    event_type: ClassVar[str] = "password.reset_requested"
    subject_field: ClassVar[str] = "user_id"

    user_id: str
    """Whose password."""


def test_a_new_event_type_makes_the_checked_in_topics_stale(root: Path) -> None:
    deploy_files.write(root)
    grown = Registry([*CATALOGUE, PasswordReset])
    assert deploy_files.drift(root, grown) == [
        f"stale: {deploy_files.TOPICS_FILE}",
        f"stale: {deploy_files.COMPOSE_TOPICS_FILE}",
    ]
    names = {t["metadata"]["name"] for t in deploy_files.kafka_topics(grown)}
    assert {"password.reset-requested", "password.reset-requested.dlq"} <= names


def test_check_names_what_drifted_and_fails(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deploy_files.write(root)
    topics_file = root / deploy_files.TOPICS_FILE
    topics_file.write_text(topics_file.read_text().replace("partitions: 6", "partitions: 5", 1))
    (root / deploy_files.COMPOSE_TOPICS_FILE).unlink()
    assert deploy_files.drift(root) == [
        f"stale: {deploy_files.TOPICS_FILE}",
        f"missing: {deploy_files.COMPOSE_TOPICS_FILE}",
    ]
    assert deploy_files.main(["--check", "--root", str(root)]) == 1
    assert "run `accord deploy`" in capsys.readouterr().err
    assert deploy_files.main(["--root", str(root)]) == 0
    assert deploy_files.main(["--check", "--root", str(root)]) == 0


def test_a_deployment_doc_without_the_markers_is_drift(root: Path) -> None:
    deploy_files.write(root)
    (root / "docs/deployment.md").write_text("# No table here\n")
    assert deploy_files.drift(root) == [
        f"missing: the Kafka ACL table markers in {deploy_files.ACL_TABLE_DOC}"
    ]


def test_accord_deploy_is_a_subcommand_of_accord(root: Path) -> None:
    parser = argparse.ArgumentParser(prog="accord")
    deploy_files.register_deploy(parser.add_subparsers())
    args = parser.parse_args(["deploy", "--root", str(root)])
    assert args.func(args) == 0
    args = parser.parse_args(["deploy", "--check", "--root", str(root)])
    assert args.func(args) == 0
