"""deploy/prometheus/alerts.yml: Prometheus accepts the rules (`promtool check rules`), every
alert passes its unit tests on synthetic series (`promtool test rules`), and every alert
has a severity, a summary, a description and a runbook that exists, is linked from
docs/operations.md and names only `accord` commands that parse.

promtool comes with Debian's prometheus package (`make prometheus`, part of `make
install`). Without it the promtool tests are skipped, saying why, unless
ACCORD_REQUIRE_PROMTOOL=1, which makes them fail instead (CI).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from accord.events.cli import build_parser

from .conftest import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
RUNBOOKS = ROOT / "docs" / "operations"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}


def alerts() -> dict[str, dict[str, Any]]:
    """Every alerting rule of alerts.yml, by name."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    found = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    return {rule["alert"]: rule for rule in found}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is missing: `make prometheus` installs Debian's prometheus package"
        if os.environ.get("ACCORD_REQUIRE_PROMTOOL") == "1":
            pytest.fail(reason + " (ACCORD_REQUIRE_PROMTOOL=1)")
        pytest.skip(reason)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_accepts_the_rules(promtool: str) -> None:
    checked = run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout


def test_every_alert_passes_its_unit_tests(promtool: str) -> None:
    tested = run(promtool, "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_promtool_would_catch_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    shutil.copy(RULES, tmp_path / "alerts.yml")
    tests = RULE_TESTS.read_text().replace("severity: critical", "severity: warning")
    (tmp_path / "alerts_test.yml").write_text(tests)
    tested = run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert tested.returncode != 0
    assert "FAILED" in tested.stdout + tested.stderr


def test_every_alert_fires_stays_quiet_and_resolves_in_the_unit_tests() -> None:
    cases: dict[str, list[bool]] = {name: [] for name in alerts()}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases[case["alertname"]].append(bool(case.get("exp_alerts")))
    for name, firing in cases.items():
        assert True in firing, f"{name}: no unit test where it fires"
        assert firing.index(True) > 0, f"{name}: no unit test where it does not fire yet"
        assert False in firing[firing.index(True) :], f"{name}: no unit test where it resolves"


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_has_a_severity_annotations_and_its_runbook(name: str) -> None:
    rule = alerts()[name]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"docs/operations/{name}.md"
    runbook = ROOT / annotations["runbook_url"]
    assert runbook.is_file(), f"{name}: {annotations['runbook_url']} does not exist"
    text = runbook.read_text()
    assert text.startswith(f"# {name}\n")
    for section in ("## What it means", "## How to look", "## What to do"):
        assert section in text, f"{runbook.name}: no {section!r}"


def test_every_runbook_belongs_to_an_alert_and_is_linked() -> None:
    runbooks = {p.stem for p in RUNBOOKS.glob("*.md") if p.name != "README.md"}
    assert runbooks == set(alerts())
    operations = OPERATIONS_DOC.read_text()
    index = (RUNBOOKS / "README.md").read_text()
    for name in runbooks:
        assert f"(operations/{name}.md)" in operations, f"docs/operations.md: no link to {name}"
        assert f"({name}.md)" in index, f"docs/operations/README.md: no link to {name}"


_COMMAND = re.compile(r"^(accord [^#`\n]*)|`(accord [^`]*)`", re.M)


def commands(text: str) -> list[str]:
    """The `accord ...` commands a runbook names, in code blocks or inline code."""
    found = (m.group(1) or m.group(2) for m in _COMMAND.finditer(text))
    return [c.strip().replace("<", "").replace(">", "") for c in found]


def test_the_runbooks_name_only_accord_commands_that_exist() -> None:
    parser = build_parser()
    named = 0
    for runbook in sorted(RUNBOOKS.glob("*.md")):
        for command in commands(runbook.read_text()):
            named += 1
            try:
                parser.parse_args(shlex.split(command)[1:])
            except SystemExit:
                pytest.fail(f"{runbook.name}: `{command}` is not a valid accord command")
    assert named >= 15


def test_the_command_check_would_catch_a_wrong_command() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            shlex.split(commands("`accord sagas list --state failed`")[0])[1:]
        )
