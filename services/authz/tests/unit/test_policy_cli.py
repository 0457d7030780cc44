"""`accord policy`: validate a policy folder and run YAML test cases against it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from accord.authz.domain.policy_files import default_policy_dir, read_policy_files
from accord.authz.policy_cli import CASES_FORMAT
from accord.authz.policy_holder import load_snapshot
from accord.events.cli import main

SHIPPED_CASES = default_policy_dir() / "tests" / "default.yaml"
#: Every shipped case file: default.yaml (access requests), authn.yaml (the factor policy).
SHIPPED_CASE_FILES = sorted((default_policy_dir() / "tests").glob("*.yaml"))

ALICE = "{type: User, id: alice, attrs: {active: true}}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def cases(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), copy, ignore=shutil.ignore_patterns("tests"))
    return copy


# --- validate ---------------------------------------------------------------------------


def test_validate_the_shipped_policies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCORD_POLICY_DIR", raising=False)
    count = len(load_snapshot(default_policy_dir()).policies.policy_ids)
    version = read_policy_files(default_policy_dir()).version

    code, out, _ = run(capsys, "validate")

    assert code == 0
    assert out == f"ok: {count} policies (version {version})\n"


def test_validate_reads_accord_policy_dir(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    (folder / "zz.cedar").write_text('@id("x")\npermit (principal, action, resource)\n')
    monkeypatch.setenv("ACCORD_POLICY_DIR", str(folder))

    code, out, err = run(capsys, "validate")

    assert code == 1
    assert out == ""
    # The `;` is missing at the end of line 2.
    assert err.startswith(f"accord: error: {folder / 'zz.cedar'}:2: syntax error")
    assert err.count("\n") == 1


def test_validate_a_folder_argument(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    (folder / "catalogue.yaml").write_text("apps: {}\n")

    code, _, err = run(capsys, "validate", str(folder))

    assert code == 1
    assert (
        err == f"accord: error: {folder / 'catalogue.yaml'}: apps: Extra inputs are not permitted\n"
    )


def test_validate_a_missing_folder_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "missing"))

    assert code == 2
    assert "policy folder not found" in err


# --- test -------------------------------------------------------------------------------


def test_the_shipped_cases_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCORD_POLICY_DIR", raising=False)

    code, out, err = run(capsys, "test", *map(str, SHIPPED_CASE_FILES))

    assert code == 0, out + err
    lines = out.splitlines()
    assert len(SHIPPED_CASE_FILES) > 1
    assert all(": PASS  " in line for line in lines[:-1])
    assert lines[-1] == f"{len(lines) - 1} passed, 0 failed"


def test_the_shipped_cases_cover_every_shipped_policy() -> None:
    text = "".join(path.read_text() for path in SHIPPED_CASE_FILES)

    for policy_id in load_snapshot(default_policy_dir()).policies.policy_ids:
        assert policy_id in text


def test_a_wrong_expectation_fails_and_says_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = cases(
        tmp_path,
        f"""\
entities: [{ALICE}]
cases:
  - name: right
    principal: {{type: User, id: alice}}
    action: request
    resource: {{application: wiki, entitlement: reader}}
    expect: permit
  - name: wrong
    principal: {{type: User, id: alice}}
    action: request
    resource: {{application: wiki, entitlement: reader}}
    expect: deny
    reasons: [inactive-users-get-nothing]
""",
    )

    code, out, _ = run(capsys, "test", str(path), "--policies", str(default_policy_dir()))

    assert code == 1
    assert out.splitlines() == [
        "PASS  right",
        "FAIL  wrong: expected deny [inactive-users-get-nothing], "
        "got permit [low-risk-self-service]",
        "1 passed, 1 failed",
    ]


def test_wrong_reasons_fail_even_with_the_right_effect(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = cases(
        tmp_path,
        f"""\
entities: [{ALICE}]
cases:
  - name: right effect, wrong policy
    principal: {{type: User, id: alice}}
    action: request
    resource: {{application: wiki, entitlement: reader}}
    expect: permit
    reasons: [someone-else]
""",
    )

    code, out, _ = run(capsys, "test", str(path))

    assert code == 1
    assert "FAIL  right effect, wrong policy: expected permit [someone-else], got permit" in out


def test_evaluation_errors_are_shown_on_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = cases(
        tmp_path,
        f"""\
entities: [{ALICE}]
cases:
  - name: unknown context
    principal: {{type: User, id: alice}}
    action: request
    resource: {{application: wiki, entitlement: reader}}
    context: {{ticket: 42}}
    expect: permit
""",
    )

    code, out, _ = run(capsys, "test", str(path))

    assert code == 1
    assert "got deny [no policy permits] (errors: " in out
    assert "ticket" in out


def test_explicit_resources_and_entities_replace_the_catalogue(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = cases(
        tmp_path,
        f"""\
entities:
  - {ALICE}
  - {{type: Entitlement, id: payroll/viewer, attrs: {{risk: low}}}}
cases:
  - name: an entity by uid
    principal: {{type: User, id: alice}}
    action: request
    resource: {{type: Entitlement, id: payroll/viewer}}
    expect: permit
    reasons: [low-risk-self-service]
  - name: a listed entity replaces the catalogue's
    principal: {{type: User, id: alice}}
    action: request
    resource: {{application: payroll, entitlement: viewer}}
    expect: permit
    reasons: [low-risk-self-service]
""",
    )

    code, out, _ = run(capsys, "test", str(path))

    assert code == 0, out
    assert out.splitlines()[-1] == "2 passed, 0 failed"


def test_several_files_name_the_file_on_each_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    second = cases(tmp_path, SHIPPED_CASES.read_text(), "second.yaml")

    code, out, _ = run(capsys, "test", str(SHIPPED_CASES), str(second))

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{SHIPPED_CASES}: PASS  ")
    assert lines[-2].startswith(f"{second}: PASS  ")


def test_the_policies_of_another_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path
) -> None:
    (folder / "default.cedar").write_text(
        '@id("everyone")\npermit (principal, action, resource);\n', encoding="utf-8"
    )
    path = cases(
        tmp_path,
        """\
cases:
  - name: anything goes
    principal: {type: User, id: nobody}
    action: request
    resource: {application: payroll, entitlement: admin}
    expect: permit
    reasons: [everyone]
""",
    )

    code, out, _ = run(capsys, "test", str(path), "--policies", str(folder))

    assert code == 0, out


def test_invalid_policies_fail_before_any_case(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    (folder / "zz.cedar").write_text("permit (principal, action, resource);\n")

    code, out, err = run(capsys, "test", str(SHIPPED_CASES), "--policies", str(folder))

    assert code == 1
    assert out == ""
    assert f"{folder / 'zz.cedar'}:1: " in err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("cases: [\n", "not valid YAML"),
        ("cases: []\n", "cases: List should have at least 1 item"),
        ("tests: []\n", "tests: Extra inputs are not permitted"),
        (
            "cases: [{name: x, principal: {type: User, id: a}, action: request,"
            " resource: {application: wiki}, expect: maybe}]\n",
            "cases.0.resource.entitlement.entitlement: Field required; "
            "cases.0.expect: Input should be 'permit' or 'deny'",
        ),
        (
            "cases: [{name: x, principal: {type: 'not a type', id: a}, action: request,"
            " resource: {type: Entitlement, id: e}, expect: deny}]\n",
            "cases.0.principal.type: String should match pattern",
        ),
        (
            "cases:\n"
            "  - {name: x, principal: {type: User, id: a}, action: request,"
            " resource: {type: Entitlement, id: e}, expect: deny}\n"
            "  - {name: x, principal: {type: User, id: b}, action: request,"
            " resource: {type: Entitlement, id: e}, expect: deny}\n",
            "case names must be unique; repeated: x",
        ),
        (
            "entities: [{type: User, id: a}, {type: User, id: a}]\n"
            "cases: [{name: x, principal: {type: User, id: a}, action: request,"
            " resource: {type: Entitlement, id: e}, expect: deny}]\n",
            'entities: listed more than once: User::"a"',
        ),
        (
            "entities: [{type: User, id: a, attrs: {active: 'yes'}}]\n"
            "cases: [{name: x, principal: {type: User, id: a}, action: request,"
            " resource: {type: Entitlement, id: e}, expect: deny}]\n",
            'entities: User::"a": cannot load entities',
        ),
    ],
)
def test_a_malformed_case_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, problem: str
) -> None:
    path = cases(tmp_path, text)

    code, out, err = run(capsys, "test", str(SHIPPED_CASES), str(path))

    assert code == 2
    assert out == ""  # files are checked before any case runs
    assert err.startswith(f"accord: error: {path}: ")
    assert problem in err
    assert err.count("\n") == 1


def test_a_missing_case_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "test", str(tmp_path / "nope.yaml"))

    assert code == 2
    assert err == f"accord: error: {tmp_path / 'nope.yaml'}: No such file or directory\n"


def test_help_documents_the_case_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["policy", "test", "--help"])

    out = capsys.readouterr().out
    assert "resource: {application: wiki, entitlement: reader}" in out
    assert CASES_FORMAT.splitlines()[-1] in out
