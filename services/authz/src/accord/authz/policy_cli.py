"""`accord policy`: validate a policy folder and test it against YAML cases, as CI does for code.

``accord policy validate [DIR]`` loads the folder as the service would (``*.cedar``,
the schema and ``catalogue.yaml``) and prints ``ok: N policies (version ...)``, or
the first problem as ``path:line: reason`` and exits 1.

``accord policy test CASES.yaml [MORE.yaml ...] [--policies DIR]`` decides each
case with the folder's policies and prints ``PASS``/``FAIL`` per case and a
summary; it exits 1 if a case fails and 2 if a case file is malformed. DIR
defaults to ``$ACCORD_POLICY_DIR``, else the policies shipped with authz.

The case file format is ``CASES_FORMAT`` below (also shown by ``--help``); the cases are
read and decided by accord.authz.policy_cases, imported when the command runs.

An entitlement resource (``{application, entitlement}``) gets its Cedar entities
(the application, and the entitlement with its risk) from the folder's
``catalogue.yaml``, as the service does, and so does an application resource
(``{type: Application, id: payroll}``: its ``privileged`` and ``sensitivity``, as
the factor policy sees them); an entity listed under ``entities`` with the same
type and id replaces the catalogue's. ``reasons``, when given,
must equal the ``@id``s of the deciding policies (in any order); a request no
policy permits is denied with the reason ``no policy permits``. Attribute values
are Cedar JSON values (an entity reference is ``{type: Entitlement, id: wiki/reader}``
where the schema expects one). Case names must be unique within a file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.events.cli import EXIT_FAILURE, EXIT_USAGE, CliError
from accord.runtime.cli_scaffold import add_action, add_actions

if TYPE_CHECKING:
    from accord.authz.policy_holder import PolicySnapshot

CASES_FORMAT = """\
case file format (YAML):
  entities:            # optional, shared by all cases: users with attrs and groups
    - {type: User, id: alice, attrs: {active: true, department: Sales},
       parents: [{type: Group, id: sales}]}
  cases:
    - name: active users get low-risk wiki access
      principal: {type: User, id: alice}
      action: request
      resource: {application: wiki, entitlement: reader}   # or {type: X, id: y}
      context: {justification: "on call"}                 # optional
      expect: permit                                       # or deny
      reasons: [low-risk-self-service]                     # optional
    - name: privileged applications need webauthn
      principal: {type: User, id: alice}
      action: require_phishing_resistant
      resource: {type: Application, id: payroll}
      context: {network: corporate, risk: low, presented: [pwd]}
      expect: permit

An entitlement resource gets its entities (application, entitlement and risk) from
the folder's catalogue.yaml, an Application resource its attributes. `reasons` must
equal the deciding policies' @ids (any order); a request no policy permits has the
reason "no policy permits".
Exit codes: 0 all passed, 1 a case failed or the policies are invalid,
2 a case file is malformed."""


# --- the command ------------------------------------------------------------------------


def _policy_dir(argument: Path | None) -> Path:
    if argument is not None:
        return argument
    from accord.authz.domain.policy_files import default_policy_dir

    configured = os.environ.get("ACCORD_POLICY_DIR")
    return Path(configured) if configured else default_policy_dir()


def _load(folder: Path) -> PolicySnapshot:
    from accord.authz.policy_holder import LoadError, load_snapshot

    try:
        return load_snapshot(folder)
    except NotADirectoryError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    except LoadError as error:
        raise CliError(str(error), EXIT_FAILURE) from None


def _validate(args: argparse.Namespace) -> int:
    snapshot = _load(_policy_dir(args.folder))
    count = len(snapshot.policies.policy_ids)
    print(f"ok: {count} {'policy' if count == 1 else 'policies'} (version {snapshot.version})")
    return 0


def _test(args: argparse.Namespace) -> int:
    from accord.authz.policy_cases import CaseFileError, run_case_files

    snapshot = _load(_policy_dir(args.policies))
    try:
        results = run_case_files(args.cases, snapshot)
    except CaseFileError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    several = len(args.cases) > 1
    for path, outcome in results:
        print(f"{path}: {outcome.line()}" if several else outcome.line())
    failed = sum(1 for _, outcome in results if not outcome.passed)
    print(f"{len(results) - failed} passed, {failed} failed")
    return EXIT_FAILURE if failed else 0


def register_policy(commands: Any) -> None:
    """Add `accord policy` to the accord command."""
    actions = add_actions(
        commands,
        "policy",
        help="validate Cedar policies and test them against YAML cases",
        description="Check authz's policy folder (*.cedar, schema.cedarschema, "
        "catalogue.yaml) as the service loads it. DIR defaults to $ACCORD_POLICY_DIR, "
        "else the policies shipped with authz.",
    )
    validate = add_action(
        actions,
        "validate",
        _validate,
        help="load the policy folder; print its version or the first problem",
        description="Prints 'ok: N policies (version SHA256)', or 'path:line: reason' and exits 1.",
    )
    validate.add_argument("folder", nargs="?", type=Path, metavar="DIR", help="policy folder")
    test = add_action(
        actions,
        "test",
        _test,
        help="decide YAML test cases with the policies; fail on any unexpected decision",
        description="Decide each case with the folder's policies and catalogue and "
        "compare with its expected decision (and deciding policies).",
        epilog=CASES_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("cases", nargs="+", type=Path, metavar="CASES.yaml", help="case files")
    test.add_argument("--policies", type=Path, metavar="DIR", help="policy folder")
