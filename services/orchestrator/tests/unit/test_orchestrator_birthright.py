"""Birthright rules: which targets a profile gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.events.catalogue import Profile
from accord.orchestrator.bootstrap import BirthrightFileError, load_birthright
from accord.orchestrator.domain.birthright import Birthright, Rule, everyone
from accord.orchestrator.settings import OrchestratorSettings

RULES = Birthright(
    rules=[
        Rule(name="all", targets=["slack"], unless={"department": "Contractors"}),
        Rule(name="eng", when={"department": ["Engineering", "SRE"]}, targets=["github"]),
        Rule(
            name="eng-leads",
            when={"department": "Engineering", "attributes.level": "lead"},
            targets=["pagerduty", "github"],
        ),
        Rule(name="inactive-never", when={"active": False}, targets=["quarantine"]),
    ]
)


def profile(**fields: object) -> Profile:
    return Profile.model_validate({"user_name": "ada", **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ["slack"]),
        ({"department": "Engineering"}, ["github", "slack"]),
        ({"department": "SRE"}, ["github", "slack"]),
        (
            {"department": "Engineering", "attributes": {"level": "lead"}},
            ["github", "pagerduty", "slack"],
        ),
        ({"department": "Sales", "attributes": {"level": "lead"}}, ["slack"]),
        ({"department": "Contractors"}, []),
        ({"active": False}, ["quarantine", "slack"]),
    ],
)
def test_targets_are_the_union_of_matching_rules(
    fields: dict[str, object], expected: list[str]
) -> None:
    assert RULES.targets_for(profile(**fields)) == expected


def test_a_missing_attribute_never_matches() -> None:
    rules = Birthright(rules=[Rule(name="x", when={"title": "CTO"}, targets=["board"])])
    assert rules.targets_for(profile()) == []
    assert rules.targets_for(profile(title="CTO")) == ["board"]


def test_everyone_and_nobody() -> None:
    assert everyone(["a", "b"]).targets_for(profile()) == ["a", "b"]
    assert everyone([]).targets_for(profile()) == []


def test_unknown_condition_attributes_are_reported() -> None:
    rules = Birthright(
        rules=[Rule(name="typo", when={"departmnet": "X", "attributes.free": "y"}, targets=["a"])]
    )
    assert rules.unknown_attributes() == ["departmnet"]


def settings_with(path: Path) -> OrchestratorSettings:
    return OrchestratorSettings.model_validate({"ACCORD_BIRTHRIGHT_FILE": str(path)})


def test_a_rules_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "birthright.yaml"
    path.write_text(
        "rules:\n  - name: eng\n    when: {department: Engineering}\n    targets: [github]\n"
    )
    rules = load_birthright(settings_with(path))
    assert rules.targets_for(profile(department="Engineering")) == ["github"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - name: x\n    targets: []\n", "targets"),
        ("rules:\n  - name: x\n    targets: [Bad_Name]\n", "targets"),
        ("rules:\n  - name: x\n    colour: red\n    targets: [a]\n", "colour"),
        ("rules:\n  - name: x\n    when: {departmnet: X}\n    targets: [a]\n", "departmnet"),
        ("rules: [\n", "not valid YAML"),
    ],
)
def test_a_bad_rules_file_is_refused_with_the_file_named(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "birthright.yaml"
    path.write_text(text)
    with pytest.raises(BirthrightFileError, match=message) as caught:
        load_birthright(settings_with(path))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_without_a_file_every_joiner_gets_the_listed_targets() -> None:
    settings = OrchestratorSettings.model_validate({"ACCORD_BIRTHRIGHT_TARGETS": "a, b"})
    assert load_birthright(settings).targets_for(profile()) == ["a", "b"]


def test_an_if_expression_narrows_a_rule() -> None:
    rules = Birthright.model_validate(
        {
            "rules": [
                {
                    "name": "french-sales",
                    "when": {"department": "Sales"},
                    "if": "has(identity.attributes.site)"
                    ' && identity.attributes.site.startsWith("FR")',
                    "targets": ["crm-fr"],
                },
                {"name": "no-title", "if": "!has(identity.title)", "targets": ["onboarding"]},
            ]
        }
    )
    assert rules.targets_for(profile(department="Sales", attributes={"site": "FR-PAR"})) == [
        "crm-fr",
        "onboarding",
    ]
    assert rules.targets_for(profile(department="Sales", attributes={"site": "DE-BER"})) == [
        "onboarding"
    ]
    assert rules.targets_for(profile(department="R&D", attributes={"site": "FR-PAR"})) == [
        "onboarding"
    ]
    assert rules.targets_for(profile(department="Sales", title="CEO")) == []


def test_an_if_reading_an_absent_attribute_does_not_match() -> None:
    rules = Birthright(
        rules=[Rule(name="x", if_='identity.attributes.site == "FR"', targets=["a"])]
    )
    assert rules.targets_for(profile()) == []
    assert rules.targets_for(profile(attributes={"site": "FR"})) == ["a"]


def test_a_rules_file_with_an_if_loads(tmp_path: Path) -> None:
    path = tmp_path / "birthright.yaml"
    path.write_text(
        "rules:\n  - name: eng\n    if: identity.department in ['Engineering', 'SRE']\n"
        "    targets: [github]\n"
    )
    rules = load_birthright(settings_with(path))
    assert rules.targets_for(profile(department="SRE")) == ["github"]
    assert rules.targets_for(profile(department="Sales")) == []


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("identity.department ==", "rule 'eng': bad `if`: line 1, column 23: Syntax error"),
        ("identity.departmnet == 'X'", "rule 'eng': bad `if`: line 1, column 10: identity has no"),
        ("now > now", "rule 'eng': bad `if`: line 1, column 1: undeclared reference to 'now'"),
        ("identity.department + 'x'", "rule 'eng': bad `if`: a condition must be a bool"),
    ],
)
def test_a_bad_if_is_refused_at_load_with_the_rule_and_position(
    tmp_path: Path, expression: str, message: str
) -> None:
    path = tmp_path / "birthright.yaml"
    path.write_text(f'rules:\n  - name: eng\n    if: "{expression}"\n    targets: [github]\n')
    with pytest.raises(BirthrightFileError) as caught:
        load_birthright(settings_with(path))
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
