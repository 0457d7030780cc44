"""The factor policy: the pure requirement arithmetic, and the shipped policies deciding it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from accord.authz.authn_api import Evaluation, SignInContext, decide_sign_in
from accord.authz.catalogue import load_catalogue
from accord.authz.domain import factors
from accord.authz.domain.factors import EVALUATION_ERROR, FactorOutcome
from accord.authz.domain.model import Decision, Entity, EntityRef
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.policy_cases import load_case_file, run_case
from accord.authz.policy_holder import load_snapshot

PERMIT = Decision("permit", ("some-policy",))
DENY = Decision("deny", ("no policy permits",))
POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")


def outcome(
    *,
    authenticate: Decision = PERMIT,
    mfa: Decision = DENY,
    phishing_resistant: Decision = DENY,
    presented: tuple[str, ...] = ("pwd",),
    enrolled: tuple[str, ...] = (),
) -> FactorOutcome:
    decisions = {
        "authenticate": authenticate,
        "require_mfa": mfa,
        "require_phishing_resistant": phishing_resistant,
    }
    return factors.evaluate(decisions, presented, enrolled)


# --- the pure domain --------------------------------------------------------------------------


def test_nothing_required_signs_in_without_a_step_up() -> None:
    result = outcome()

    assert result.allowed
    assert (result.required, result.missing, result.satisfied) == ((), (), ())
    assert not result.step_up
    assert not result.enrolment_needed
    assert dict(result.reasons) == {"authenticate": ("some-policy",)}


def test_a_missing_second_factor_asks_for_a_step_up() -> None:
    result = outcome(mfa=Decision("permit", ("mfa-off-corporate-network",)), enrolled=("totp",))

    assert result.required == ("mfa",)
    assert result.missing == ("mfa",)
    assert result.step_up
    assert not result.enrolment_needed
    assert dict(result.enrol) == {}
    assert dict(result.acceptable) == {"mfa": ("hwk", "mfa", "otp", "swk")}
    assert result.reasons["mfa"] == ("mfa-off-corporate-network",)


def test_a_requirement_no_enrolled_factor_meets_needs_an_enrolment() -> None:
    result = outcome(
        mfa=PERMIT, phishing_resistant=PERMIT, presented=("pwd", "otp"), enrolled=("totp",)
    )

    assert result.satisfied == ("mfa",)
    assert result.missing == ("phishing_resistant",)
    assert result.step_up
    assert result.enrolment_needed
    assert dict(result.enrol) == {"phishing_resistant": ("webauthn",)}


def test_an_identity_without_factors_is_sent_to_enrol_one() -> None:
    result = outcome(mfa=PERMIT)

    assert result.enrolment_needed
    assert dict(result.enrol) == {"mfa": ("totp", "webauthn")}


@pytest.mark.parametrize("key", ["hwk", "swk", "HWK"])
def test_a_webauthn_key_satisfies_both_requirements(key: str) -> None:
    result = outcome(mfa=PERMIT, phishing_resistant=PERMIT, presented=("pwd", key))

    assert result.satisfied == ("mfa", "phishing_resistant")
    assert result.missing == ()
    assert not result.step_up
    assert not result.enrolment_needed


@pytest.mark.parametrize("amr", ["otp", "mfa"])
def test_a_one_time_password_or_the_providers_mfa_is_not_phishing_resistant(amr: str) -> None:
    result = outcome(mfa=PERMIT, phishing_resistant=PERMIT, presented=("pwd", amr))

    assert result.satisfied == ("mfa",)
    assert result.missing == ("phishing_resistant",)


def test_a_refused_sign_in_is_no_step_up_even_with_something_missing() -> None:
    result = outcome(authenticate=Decision("deny", ("locked-users-may-not-sign-in",)), mfa=PERMIT)

    assert not result.allowed
    assert result.missing == ("mfa",)
    assert not result.step_up
    assert result.reasons["authenticate"] == ("locked-users-may-not-sign-in",)


def test_a_requirement_that_could_not_be_evaluated_is_imposed() -> None:
    broken = Decision("deny", ("no policy permits",), ("policy x: attribute not found",))

    result = outcome(phishing_resistant=broken, presented=("pwd", "otp"))

    assert result.required == ("phishing_resistant",)
    assert result.missing == ("phishing_resistant",)
    assert result.reasons["phishing_resistant"] == (EVALUATION_ERROR,)
    assert result.errors == ("policy x: attribute not found",)


def test_every_action_needs_a_decision() -> None:
    with pytest.raises(KeyError):
        factors.evaluate({"authenticate": PERMIT}, (), ())


# --- the shipped policies -----------------------------------------------------------------------


def sign_in(
    application: str,
    *,
    user: dict[str, Any] | None = None,
    presented: tuple[str, ...] = ("pwd",),
    **context: Any,
) -> FactorOutcome:
    principal = Entity(
        EntityRef("User", "ada"), {"active": True, "factors": {"totp"}} if user is None else user
    )
    cedar_context = SignInContext(presented=list(presented), **context).cedar(datetime.now(UTC))
    entities = [principal, CATALOGUE.application_entity(application)]
    decisions = decide_sign_in(POLICIES, "ada", application, cedar_context, entities)
    return factors.evaluate(
        decisions, cedar_context["presented"], principal.attrs.get("factors", ())
    )


def test_a_privileged_application_needs_webauthn_even_on_the_corporate_network() -> None:
    result = sign_in("payroll", network="corporate", risk="low")

    assert result.allowed
    assert result.required == ("phishing_resistant",)
    assert result.reasons["phishing_resistant"] == ("phishing-resistant-for-privileged-apps",)
    assert result.step_up
    assert result.enrolment_needed  # ada has TOTP only
    assert dict(result.enrol) == {"phishing_resistant": ("webauthn",)}


def test_the_internet_needs_a_second_factor() -> None:
    result = sign_in("wiki", network="internet", risk="low")

    assert result.required == ("mfa",)
    assert result.reasons["mfa"] == ("mfa-off-corporate-network",)
    assert result.step_up
    assert not result.enrolment_needed


def test_the_corporate_network_at_low_risk_needs_nothing_more_for_ordinary_applications() -> None:
    result = sign_in("wiki", network="corporate", risk="low", device_managed=True, hour=10)

    assert result.allowed
    assert result.required == ()
    assert not result.step_up


def test_medium_risk_asks_for_a_second_factor_on_the_corporate_network() -> None:
    result = sign_in("wiki", network="corporate", risk="medium")

    assert result.reasons["mfa"] == ("mfa-when-risk-is-elevated",)


def test_a_hardware_key_satisfies_a_privileged_application_off_the_network() -> None:
    result = sign_in("payroll", network="internet", presented=("pwd", "hwk"))

    assert result.required == ("mfa", "phishing_resistant")
    assert result.satisfied == ("mfa", "phishing_resistant")
    assert result.allowed
    assert not result.step_up


def test_a_locked_identity_may_not_sign_in() -> None:
    result = sign_in("wiki", user={"active": True, "locked": True}, presented=("pwd", "hwk"))

    assert not result.allowed
    assert result.reasons["authenticate"] == ("locked-users-may-not-sign-in",)
    assert not result.step_up


def test_an_ended_lockout_signs_in_again() -> None:
    assert sign_in("wiki", user={"active": True, "locked": False}, network="corporate").allowed


def test_high_risk_refuses_a_privileged_application_whatever_the_factors() -> None:
    result = sign_in("payroll", risk="high", network="corporate", presented=("pwd", "hwk"))

    assert not result.allowed
    assert result.reasons["authenticate"] == ("high-risk-blocks-privileged-apps",)


def test_high_risk_still_admits_ordinary_applications_with_a_second_factor() -> None:
    result = sign_in("wiki", risk="high", network="corporate", presented=("pwd", "otp"))

    assert result.allowed
    assert result.satisfied == ("mfa",)


@pytest.mark.parametrize("user", [{}, {"active": False}], ids=["unknown", "inactive"])
def test_unknown_and_inactive_identities_may_not_sign_in(user: dict[str, Any]) -> None:
    result = sign_in("wiki", user=user, network="corporate")

    assert not result.allowed
    assert result.reasons["authenticate"] == ("inactive-users-get-nothing",)


def test_an_application_the_catalogue_does_not_list_is_not_privileged() -> None:
    result = sign_in("somewhere-else", network="corporate", risk="low")

    assert result.allowed
    assert result.required == ()


def test_entities_cedar_refuses_deny_the_sign_in_and_impose_every_requirement() -> None:
    result = sign_in("wiki", user={"active": True, "factors": "totp"}, network="corporate")

    assert not result.allowed
    assert result.required == ("mfa", "phishing_resistant")
    assert result.errors


# --- the catalogue, the context and the request -----------------------------------------------


def test_the_catalogue_gives_applications_their_sign_in_attributes() -> None:
    assert CATALOGUE.application_entity("payroll").attrs == {
        "privileged": True,
        "sensitivity": "high",
    }
    assert CATALOGUE.application_entity("wiki").attrs == {"sensitivity": "low"}
    assert CATALOGUE.application_entity("nowhere").attrs == {}
    entitlement_parent = CATALOGUE.resource_entities("payroll", "admin")[0]
    assert entitlement_parent.attrs["privileged"] is True


def test_the_catalogue_lists_accords_recovery_entitlements_without_provisioning() -> None:
    accord = CATALOGUE.application("accord")

    assert set(accord.entitlements) == {"unlock", "mfa-reset"}
    assert accord.target is None
    assert all(entry.risk is None for entry in accord.entitlements.values())
    assert CATALOGUE.provisioning("accord", "unlock") == ()


def test_the_hour_defaults_to_now_in_utc_and_amr_values_are_normalised() -> None:
    now = datetime(2030, 1, 2, 23, 30, tzinfo=UTC)

    context = SignInContext(presented=["PWD", "hwk", "pwd"], risk="low").cedar(now)

    assert context == {"presented": ["hwk", "pwd"], "hour": 23, "risk": "low"}
    assert SignInContext(hour=0).cedar(now)["hour"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "ada", "application": "wiki", "context": {"hour": 24}},
        {"user_id": "ada", "application": "wiki", "context": {"hour": True}},
        {"user_id": "ada", "application": "wiki", "context": {"hour": "9"}},
        {"user_id": "ada", "application": "wiki", "context": {"hour": 9.5}},
        {"user_id": "ada", "application": "wiki", "context": {"device_managed": "yes"}},
        {"user_id": "ada", "application": "wiki", "context": {"risk": "severe"}},
        {"user_id": "ada", "application": "wiki", "context": {"presented": ["p w d"]}},
        {"user_id": "ada", "application": "wiki", "context": {"presented": ["otp"] * 17}},
        {"user_id": "ada", "application": "wiki", "context": {"ip": "10.0.0.1"}},
        {"user_id": "", "application": "wiki"},
        {"user_id": "ada"},
    ],
)
def test_malformed_evaluations_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Evaluation.model_validate(body)


def test_a_whole_number_is_an_hour_as_json_schema_says() -> None:
    body = {"user_id": "ada", "application": "wiki", "context": {"hour": 9.0}}

    assert Evaluation.model_validate(body).context.hour == 9


def test_policy_cases_get_an_applications_attributes_from_the_catalogue(tmp_path: Path) -> None:
    snapshot = load_snapshot(default_policy_dir())
    path = tmp_path / "cases.yaml"
    path.write_text(
        """\
entities:
  - {type: User, id: ada, attrs: {active: true}}
  - {type: Application, id: wiki, attrs: {privileged: true}}
cases:
  - name: payroll is privileged in the catalogue
    principal: {type: User, id: ada}
    action: require_phishing_resistant
    resource: {type: Application, id: payroll}
    context: {presented: [pwd]}
    expect: permit
  - name: a listed entity replaces the catalogue's
    principal: {type: User, id: ada}
    action: require_phishing_resistant
    resource: {type: Application, id: wiki}
    context: {presented: [pwd]}
    expect: permit
"""
    )
    cases, entities = load_case_file(path, snapshot)

    outcomes = [run_case(snapshot, case, entities) for case in cases.cases]

    assert [o.passed for o in outcomes] == [True, True], [o.line() for o in outcomes]
