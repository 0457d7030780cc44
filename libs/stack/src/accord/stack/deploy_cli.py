"""`accord deploy`: its arguments and what it prints. What it writes and checks comes from
accord.stack.deploy_files, imported when the command runs (it reads the event registry)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register_deploy(commands: Any) -> None:
    """Add `accord deploy` to the accord command."""
    p = commands.add_parser(
        "deploy",
        help="write (or check) the deployment files generated from Accord's tables",
        description="Write the Strimzi KafkaTopics and KafkaUsers (deploy/k8s/base/kafka), "
        "the compose topic list (deploy/compose/topics.txt), the brokers' and the services' "
        "Kafka settings (docker-compose.yml's env files, the Strimzi Kafka, the services' "
        "ConfigMap and the dev overlay's patches), the Kafka version of the compose image and "
        "the Strimzi Kafka (deploy/kafka/pom.xml's), the policies ConfigMap's files and the "
        "Kafka ACL table of docs/deployment.md from the event registry, the topic layouts and "
        "the ACL table; the PrometheusRule and the Grafana dashboards' ConfigMap "
        "(deploy/k8s/monitoring) from deploy/prometheus/alerts.yml and deploy/grafana.",
    )
    add_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--root and --check, running the command (`python -m accord.stack.deploy_files` too)."""
    p.add_argument("--root", type=Path, default=Path("."), help="the repository root (default: .)")
    p.add_argument("--check", action="store_true", help="fail if a file differs; write nothing")
    p.set_defaults(func=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    from accord.stack.deploy_files import POLICY_SOURCE, DeployError

    root: Path = args.root
    if not (root / POLICY_SOURCE).is_dir():
        print(
            f"accord: error: {root} is not Accord's repository (no {POLICY_SOURCE})",
            file=sys.stderr,
        )
        return 2
    try:
        return _check(root) if args.check else _write(root)
    except DeployError as error:
        print(f"accord: error: {error}", file=sys.stderr)
        return 2


def _check(root: Path) -> int:
    from accord.stack.deploy_files import drift

    problems = drift(root)
    if problems:
        print(
            "accord: error: deployment files drifted from what generates them"
            " (run `accord deploy`): " + ", ".join(problems),
            file=sys.stderr,
        )
        return 1
    print(
        "deployment files match the registry, the topic layouts, deploy/kafka/pom.xml"
        ", deploy/prometheus/alerts.yml and deploy/grafana"
    )
    return 0


def _write(root: Path) -> int:
    from accord.stack.deploy_files import PARTS, render, write

    changed = write(root)
    print(f"wrote {len(changed)} file(s)" + (": " + ", ".join(changed) if changed else ""))
    expected = render(root)
    for rel, what in PARTS.items():
        if rel not in expected:
            print(f"accord: warning: missing {what}", file=sys.stderr)
    return 0
