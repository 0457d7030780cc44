"""CEL expressions for scopes, task conditions and birthright rules."""

from __future__ import annotations

import datetime as dt

import pytest

from accord.events.catalogue import Profile
from accord.orchestrator.workflows.expressions import (
    STANDARD_VARIABLES,
    ExpressionError,
    compile_condition,
    compile_expression,
    identity_context,
)

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
SALES_SCOPE = (
    'identity.department == "Sales" && identity.employee_type in ["employee", "contractor"]'
)
FRENCH_LEAVERS = 'has(identity.leave_date) && identity.attributes.site.startsWith("FR")'


def context(**fields: object) -> dict[str, object]:
    return identity_context({"user_id": "u-1", "user_name": "ada", **fields}, now=NOW)


def test_a_syntax_error_has_its_line_and_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression('identity.department == "Sales" &&\n  identity.title ==== "x"')
    assert (caught.value.line, caught.value.column) == (2, 20)
    assert "Syntax error" in caught.value.message
    assert str(caught.value).startswith("line 2, column 20: ")


def test_an_undeclared_variable_is_refused_at_compile_time() -> None:
    with pytest.raises(ExpressionError, match="undeclared reference to 'idenity") as caught:
        compile_expression('idenity.department == "Sales"')
    assert (caught.value.line, caught.value.column) == (1, 8)


def test_an_unknown_identity_field_is_refused_but_not_inside_a_string() -> None:
    with pytest.raises(ExpressionError, match="identity has no field 'departmnet'") as caught:
        compile_expression("identity.active &&\n previous.department != identity.departmnet")
    assert (caught.value.line, caught.value.column) == (2, 34)
    compile_expression('identity.title == "identity.foo"')


def test_operators_on_types_that_never_fit_are_refused() -> None:
    with pytest.raises(ExpressionError, match="no matching overload") as caught:
        compile_expression('1 + "a"')
    assert caught.value.line == 1


def test_a_condition_must_be_a_bool_when_the_checker_knows() -> None:
    with pytest.raises(ExpressionError, match="must be a bool, this one is STRING"):
        compile_condition('identity.department + "x"')
    assert compile_condition("identity.active").result_type == "DYN"


def test_the_declared_variables_replace_the_standard_ones() -> None:
    with pytest.raises(ExpressionError, match="undeclared reference to 'now'"):
        compile_expression("now > now", variables={"identity": dict})
    extended = compile_expression("item > 2", variables={**STANDARD_VARIABLES, "item": int})
    assert extended.evaluate({**context(), "item": 3}) is True


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"department": "Sales", "employee_type": "contractor"}, True),
        ({"department": "Sales", "employee_type": "employee"}, True),
        ({"department": "Sales", "employee_type": "intern"}, False),
        ({"department": "R&D", "employee_type": "employee"}, False),
    ],
)
def test_in_a_list(fields: dict[str, object], expected: bool) -> None:
    assert compile_condition(SALES_SCOPE).holds(context(**fields)) is expected


def test_absent_fields_are_absent_keys_so_has_works() -> None:
    expression = compile_condition(FRENCH_LEAVERS)
    french = {"attributes": {"site": "FR-PAR"}}
    assert expression.holds(context(leave_date=dt.date(2026, 12, 31), **french)) is True
    assert expression.holds(context(leave_date=None, **french)) is False
    assert expression.holds(context(leave_date="2026-12-31", attributes={"site": "DE"})) is False
    assert "leave_date" not in context(leave_date=None)["identity"]  # type: ignore[operator]


def test_a_missing_key_is_an_error_for_evaluate_and_false_for_holds() -> None:
    expression = compile_expression('identity.attributes.site == "FR"')
    with pytest.raises(ExpressionError, match="Key not found in map"):
        expression.evaluate(context())
    assert expression.holds(context()) is False
    assert compile_condition('!(identity.attributes.site == "FR")').holds(context()) is False


def test_holds_refuses_a_non_bool_result() -> None:
    expression = compile_expression("identity.department")
    assert expression.evaluate(context(department="Sales")) == "Sales"
    with pytest.raises(ExpressionError, match="must be a bool, this one gave 'Sales'"):
        expression.holds(context(department="Sales"))


def test_string_functions() -> None:
    ctx = context(email="ada@example.org", attributes={"site": "FR-PAR"})
    for text in (
        'identity.email.endsWith("@example.org")',
        'identity.email.contains("@")',
        'identity.attributes.site.matches("^FR-[A-Z]{3}$")',
        'identity.email.split("@")[1] == "example.org"',
        'changed.all(c, c != "x") && ![1, 2].exists(x, x > 2)',
        "[1, 2, 3].filter(x, x > 1).map(x, x * 10) == [20, 30]",
    ):
        assert compile_condition(text).holds(ctx), text


def test_timestamps_compare_with_now() -> None:
    leaving = compile_condition('timestamp(identity.leave_date) - now < duration("72h")')
    soon = context(leave_date=dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC))
    later = context(
        leave_date=dt.datetime(2026, 12, 9, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    )
    assert soon["identity"]["leave_date"] == "2026-12-07T09:00:00Z"  # type: ignore[index]
    assert later["identity"]["leave_date"] == "2026-12-09T08:00:00Z"  # type: ignore[index]
    assert leaving.holds(soon) is True
    assert leaving.holds(later) is False
    assert compile_expression("now").evaluate(context()) == NOW
    hired = compile_condition('identity.hire_date <= "2026-12-05"')
    assert hired.holds(context(hire_date=dt.date(2026, 12, 5))) is True
    assert hired.holds(context(hire_date=dt.date(2026, 12, 6))) is False


def test_movers_see_previous_and_changed() -> None:
    ctx = identity_context(
        Profile(user_name="ada", department="Sales"),
        previous=Profile(user_name="ada", department="R&D", title="Eng"),
        changed=["department"],
        now=NOW,
        variables={"ticket": "T-1", "when": dt.date(2026, 1, 2)},
    )
    moved = compile_condition(
        '"department" in changed && previous.department != identity.department'
        ' && has(previous.title) && !has(identity.title) && vars.when == "2026-01-02"'
    )
    assert moved.holds(ctx) is True
    assert compile_condition("previous == null").holds(context()) is True


def test_compiled_expressions_are_cached_by_text() -> None:
    first = compile_expression(SALES_SCOPE)
    assert compile_expression(SALES_SCOPE) is first
    assert compile_expression(SALES_SCOPE, variables={"identity": dict}) is not first


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        identity_context({"user_name": "ada"}, now=dt.datetime(2026, 1, 1))
