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
from accord.stack import deploy_files, kafka_acls

REPO = Path(__file__).resolve().parents[4]
README_WITH_MARKERS = (
    f"# Somewhere\n\n## Deploying\n\n{deploy_files.ACL_BEGIN}\nold table\n"
    f"{deploy_files.ACL_END}\n\n## Next\n"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repository root with what the generator reads: the policies and a README."""
    policies = tmp_path / deploy_files.POLICY_SOURCE
    shutil.copytree(REPO / deploy_files.POLICY_SOURCE, policies)
    (tmp_path / "README.md").write_text(README_WITH_MARKERS)
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


def test_the_compose_list_names_every_topic_once() -> None:
    lines = [
        line.split()
        for line in deploy_files.compose_topics().splitlines()
        if not line.startswith("#")
    ]
    assert [fields[0] for fields in lines] == deploy_files.topic_names()
    assert {tuple(fields[1:3]) for fields in lines} == {("3", "1")}


def test_a_kafka_user_per_service_and_the_operator() -> None:
    users = {u["metadata"]["name"]: u for u in deploy_files.kafka_users()}
    assert set(users) == {
        "accord-orchestrator",
        "accord-provisioner",
        "accord-authz",
        "accord-auditor",
        "accord-authn",
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
    assert "README.md" in written
    assert deploy_files.drift(root) == []
    assert deploy_files.write(root) == []
    readme = (root / "README.md").read_text()
    assert "old table" not in readme
    assert "| `accord-auditor` |" in readme
    assert readme.endswith("## Next\n")
    documents = list(yaml.safe_load_all((root / deploy_files.TOPICS_FILE).read_text()))
    assert len(documents) == len(REGISTRY.topics(with_dlq=True))


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


def test_a_readme_without_the_markers_is_drift(root: Path) -> None:
    deploy_files.write(root)
    (root / "README.md").write_text("# No table here\n")
    assert deploy_files.drift(root) == [
        f"missing: the Kafka ACL table markers in {deploy_files.README}"
    ]


def test_accord_deploy_is_a_subcommand_of_accord(root: Path) -> None:
    parser = argparse.ArgumentParser(prog="accord")
    deploy_files.register_deploy(parser.add_subparsers())
    args = parser.parse_args(["deploy", "--root", str(root)])
    assert args.func(args) == 0
    args = parser.parse_args(["deploy", "--check", "--root", str(root)])
    assert args.func(args) == 0
