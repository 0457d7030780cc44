"""The policy-decision domain: compiling Cedar policies and deciding access queries."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from accord.authz.domain import (
    NO_POLICY_PERMITS,
    AccessQuery,
    Decision,
    Entity,
    EntityError,
    EntityRef,
    LoadedPolicies,
    PolicyError,
    PolicySource,
    compile_policies,
    decide,
    decide_batch,
    load_entities,
)
from accord.authz.domain.policy_files import (
    default_policy_dir,
    load_policy_dir,
    read_policy_dir,
)

SCHEMA = """
entity Group in [Group];
entity User in [Group] { department?: String, active?: Bool };
entity Application;
entity Entitlement in [Application] { risk?: String };
action request appliesTo {
  principal: [User],
  resource: [Entitlement],
  context: { justification?: String },
};
"""

LOW_RISK = """\
@id("low-risk")
permit (principal, action == Action::"request", resource)
when { resource has risk && resource.risk == "low" };
"""

NO_INACTIVE = """\
@id("no-inactive")
forbid (principal, action, resource)
when { principal has active && !principal.active };
"""

ALICE = EntityRef("User", "alice")
BOB = EntityRef("User", "bob")
CAROL = EntityRef("User", "carol")
BACKEND = EntityRef("Group", "backend")
ENGINEERING = EntityRef("Group", "engineering")
GITHUB = EntityRef("Application", "github")
GH_READ = EntityRef("Entitlement", "github-read")
GH_ADMIN = EntityRef("Entitlement", "github-admin")

ENTITIES = [
    Entity(ALICE, {"department": "eng", "active": True}, (BACKEND,)),
    Entity(BOB, {"active": False}),
    Entity(CAROL, {"active": True}),
    Entity(BACKEND, parents=(ENGINEERING,)),
    Entity(ENGINEERING),
    Entity(GITHUB),
    Entity(GH_READ, {"risk": "low"}, (GITHUB,)),
    Entity(GH_ADMIN, {"risk": "high"}, (GITHUB,)),
]


def compile_texts(*texts: str, schema: str | None = SCHEMA) -> LoadedPolicies:
    sources = [PolicySource(f"p{i}.cedar", text) for i, text in enumerate(texts)]
    return compile_policies(sources, schema)


def request(principal: EntityRef, resource: EntityRef, **context: object) -> AccessQuery:
    return AccessQuery(principal, "request", resource, dict(context))


def compile_error(*sources: PolicySource, schema: str | None = SCHEMA) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        compile_policies(list(sources), schema)
    return info.value


# --- decisions -------------------------------------------------------------------------


def test_permit_names_the_policy_by_its_id() -> None:
    policies = compile_texts(LOW_RISK)

    decision = decide(policies, request(CAROL, GH_READ), ENTITIES)

    assert decision == Decision("permit", ("low-risk",), ())
    assert decision.permitted


def test_nothing_permits_means_deny() -> None:
    policies = compile_texts(LOW_RISK)

    decision = decide(policies, request(CAROL, GH_ADMIN), ENTITIES)

    assert decision == Decision("deny", (NO_POLICY_PERMITS,), ())
    assert NO_POLICY_PERMITS == "no policy permits"
    assert not decision.permitted


def test_an_empty_policy_set_denies_everything() -> None:
    policies = compile_policies([], SCHEMA)

    assert decide(policies, request(CAROL, GH_READ), ENTITIES).reasons == (NO_POLICY_PERMITS,)


def test_forbid_overrides_permit_and_is_the_reason() -> None:
    policies = compile_texts(LOW_RISK, NO_INACTIVE)

    decision = decide(policies, request(BOB, GH_READ), ENTITIES)

    assert decision == Decision("deny", ("no-inactive",), ())


def test_all_satisfied_permits_are_reasons() -> None:
    anyone = '@id("anyone") permit (principal, action, resource);'
    policies = compile_texts(LOW_RISK, anyone)

    assert decide(policies, request(CAROL, GH_READ), ENTITIES).reasons == ("anyone", "low-risk")


def test_membership_of_nested_groups_is_transitive() -> None:
    policies = compile_texts(
        '@id("engineering-on-github")\n'
        'permit (principal in Group::"engineering", action, resource in Application::"github");'
    )

    # alice is in backend, backend is in engineering; carol is in no group.
    assert decide(policies, request(ALICE, GH_ADMIN), ENTITIES).reasons == (
        "engineering-on-github",
    )
    assert decide(policies, request(CAROL, GH_ADMIN), ENTITIES).effect == "deny"


def test_context_is_available_to_policies() -> None:
    policies = compile_texts(
        '@id("justified") permit (principal, action, resource)\n'
        'when { context has justification && context.justification != "" };'
    )

    assert decide(policies, request(CAROL, GH_ADMIN, justification="oncall"), ENTITIES).permitted
    assert not decide(policies, request(CAROL, GH_ADMIN), ENTITIES).permitted


def test_a_request_the_schema_rejects_is_denied_with_the_error() -> None:
    policies = compile_texts(LOW_RISK)

    decision = decide(policies, request(CAROL, GH_READ, justification=42), ENTITIES)

    assert decision.effect == "deny"
    assert decision.reasons == (NO_POLICY_PERMITS,)
    assert len(decision.errors) == 1
    assert "context" in decision.errors[0]


def test_entities_the_schema_rejects_deny_with_a_short_error() -> None:
    policies = compile_texts(LOW_RISK)
    entities = [*ENTITIES[1:], Entity(ALICE, {"active": "yes"})]

    decision = decide(policies, request(CAROL, GH_READ), entities)

    assert decision.effect == "deny"
    [error] = decision.errors
    assert "`active`" in error
    assert "github-admin" not in error  # the entities document is not quoted back


def test_evaluation_errors_name_policies_by_id() -> None:
    # Without a schema nothing stops a policy from reading a missing attribute.
    policies = compile_texts(
        LOW_RISK,
        '@id("by-department") permit (principal, action, resource)\n'
        'when { principal.department == "eng" };',
        schema=None,
    )

    decision = decide(policies, request(CAROL, GH_READ), ENTITIES)

    assert decision.reasons == ("low-risk",)
    [error] = decision.errors
    assert "`by-department`" in error
    assert "policy1" not in error


def test_batch_decisions_equal_single_decisions() -> None:
    policies = compile_texts(LOW_RISK, NO_INACTIVE)
    queries = [request(user, ent) for user in (ALICE, BOB, CAROL) for ent in (GH_READ, GH_ADMIN)]
    queries.append(request(CAROL, GH_READ, justification=42))

    single = [decide(policies, query, ENTITIES) for query in queries]

    assert decide_batch(policies, queries, ENTITIES) == single
    graph = load_entities(policies, ENTITIES)
    assert decide_batch(policies, queries, graph) == single
    assert [decide(policies, query, graph) for query in queries] == single
    assert [d.effect for d in single[:6]] == ["permit", "deny", "deny", "deny", "permit", "deny"]
    assert decide_batch(policies, [], ENTITIES) == []


def test_an_entity_graph_can_grow_per_request() -> None:
    policies = compile_texts(LOW_RISK)
    base = load_entities(policies, [e for e in ENTITIES if e.ref != GH_READ])
    grown = base.with_added([Entity(GH_READ, {"risk": "low"}, (GITHUB,))])

    assert len(grown) == len(base) + 1
    assert decide(policies, request(CAROL, GH_READ), grown).permitted
    assert not decide(policies, request(CAROL, GH_READ), base).permitted


def test_entities_the_schema_rejects_cannot_be_loaded() -> None:
    policies = compile_texts(LOW_RISK)

    with pytest.raises(EntityError):
        load_entities(policies, [Entity(ALICE, {"active": "yes"})])


def test_entity_references_in_attributes_and_context() -> None:
    policies = compile_texts(
        '@id("own-manager") permit (principal, action, resource)\n'
        "when { context.approver == principal.manager };",
        schema=None,
    )
    dave = Entity(EntityRef("User", "dave"), {"manager": ALICE})

    query = request(dave.ref, GH_ADMIN, approver=ALICE)
    assert decide(policies, query, [dave]).permitted
    assert not decide(policies, request(dave.ref, GH_ADMIN, approver=BOB), [dave]).permitted


# --- model -----------------------------------------------------------------------------


def test_entity_ref_renders_as_a_cedar_uid() -> None:
    assert str(EntityRef("User", "alice")) == 'User::"alice"'
    assert str(EntityRef("Ns::User", 'a"b\\c\nd')) == 'Ns::User::"a\\"b\\\\c\\nd"'
    assert EntityRef("User", "alice").to_cedar() == {"type": "User", "id": "alice"}


@pytest.mark.parametrize("bad_type", ["", "1User", "User::", 'User::"x"', "Us er"])
def test_entity_ref_rejects_invalid_type_names(bad_type: str) -> None:
    with pytest.raises(ValueError, match="entity type"):
        EntityRef(bad_type, "x")


def test_values_are_frozen_and_hashable() -> None:
    query = request(ALICE, GH_READ, justification="x")
    entity = Entity(ALICE, {"active": True}, [BACKEND])  # type: ignore[arg-type, unused-ignore]

    assert entity.parents == (BACKEND,)
    assert hash(query) == hash(request(ALICE, GH_READ))
    assert hash(entity)
    with pytest.raises(AttributeError):
        query.action = "other"  # type: ignore[misc, unused-ignore]


# --- compiling -------------------------------------------------------------------------


def test_loaded_policies_keep_the_id_mapping_and_locations() -> None:
    policies = compile_policies(
        [PolicySource("a.cedar", LOW_RISK), PolicySource("b.cedar", "// x\n" + NO_INACTIVE)],
        SCHEMA,
    )

    assert dict(policies.ids) == {"policy0": "low-risk", "policy1": "no-inactive"}
    assert policies.policy_ids == ("low-risk", "no-inactive")
    assert dict(policies.locations) == {"low-risk": "a.cedar:1", "no-inactive": "b.cedar:2"}
    assert policies.schema == SCHEMA
    assert "low-risk" in policies.text


def test_a_policy_without_id_is_rejected() -> None:
    text = LOW_RISK + "\n// anyone\npermit (principal, action, resource);\n"

    error = compile_error(PolicySource("rules.cedar", text))

    assert (error.path, error.line) == ("rules.cedar", 6)
    assert str(error) == 'rules.cedar:6: policy has no @id("...") annotation'


def test_an_empty_id_is_rejected() -> None:
    error = compile_error(PolicySource("a.cedar", '@id("") permit (principal, action, resource);'))

    assert error.line == 1
    assert "@id" in error.reason


def test_a_duplicate_id_is_rejected_even_across_files() -> None:
    error = compile_error(
        PolicySource("a.cedar", LOW_RISK),
        PolicySource("b.cedar", NO_INACTIVE + "\n" + LOW_RISK),
    )

    assert (error.path, error.line) == ("b.cedar", 5)
    assert str(error) == 'b.cedar:5: duplicate @id("low-risk"), first used at a.cedar:1'


def test_a_syntax_error_names_the_file_and_its_line() -> None:
    broken = (
        "// a semicolon in a comment; and in a string below\n"
        '@id("semi;colon") permit (principal, action, resource)\n'
        'when { resource has risk && resource.risk == "a;b" };\n'
        "\n"
        '@id("broken")\n'
        "permit (principal, action, resource)\n"
        "when { principal.active && };\n"
        '@id("after") permit (principal, action, resource);\n'
    )

    error = compile_error(PolicySource("a.cedar", LOW_RISK), PolicySource("b.cedar", broken))

    assert (error.path, error.line) == ("b.cedar", 7)
    assert str(error).startswith("b.cedar:7: syntax error: ")
    assert "\n" not in str(error)


def test_a_missing_semicolon_is_reported_where_it_is_missing() -> None:
    text = LOW_RISK + '\n\n@id("last")\npermit (principal, action, resource)\n'

    error = compile_error(PolicySource("a.cedar", text))

    assert (error.path, error.line) == ("a.cedar", 7)


def test_an_unterminated_string_is_reported_at_its_policy() -> None:
    text = LOW_RISK + '@id("x) permit (principal, action, resource);\n' + NO_INACTIVE

    error = compile_error(PolicySource("a.cedar", text))

    assert (error.path, error.line) == ("a.cedar", 4)


def test_a_schema_violation_names_the_policy_and_the_line_of_the_violation() -> None:
    text = LOW_RISK + (
        '\n@id("by-team")\npermit (principal, action, resource)\n'
        'when { principal.team == "sre" };\n'
    )

    error = compile_error(PolicySource("team.cedar", text))

    assert (error.path, error.line) == ("team.cedar", 7)
    assert str(error).startswith("team.cedar:7: schema validation failed: ")
    assert "`by-team`" in error.reason
    assert "team" in error.reason


def test_a_has_guard_hides_an_unknown_attribute_from_validation() -> None:
    # Known Cedar behaviour: `has` on an attribute the schema does not declare is
    # typed `false`, so the policy validates but can never apply. Cedar reports
    # that as a warning, which cedarpy does not expose.
    text = '@id("x") permit (principal, action, resource) when { principal has team };'

    policies = compile_texts(text)

    assert not decide(policies, request(CAROL, GH_READ), ENTITIES).permitted


def test_schema_violations_are_only_checked_with_a_schema() -> None:
    text = '@id("x") permit (principal, action, resource) when { principal.team == "sre" };'

    assert compile_texts(text, schema=None).policy_ids == ("x",)


def test_a_schema_in_json_form_is_accepted() -> None:
    schema = {
        "": {
            "entityTypes": {"User": {}, "Entitlement": {}},
            "actions": {
                "request": {
                    "appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Entitlement"]}
                }
            },
        }
    }
    policies = compile_texts(
        '@id("all") permit (principal, action == Action::"request", resource);',
        schema=json.dumps(schema),
    )

    assert decide(policies, request(CAROL, GH_READ), [Entity(CAROL)]).permitted


def test_an_invalid_schema_is_rejected() -> None:
    with pytest.raises(PolicyError) as info:
        compile_policies([], "entity User { x: Strin };", schema_path="schema.cedarschema")

    assert info.value.line is None
    assert str(info.value).startswith("schema.cedarschema: invalid schema: ")


def test_templates_are_rejected() -> None:
    text = '@id("t")\npermit (principal == ?principal, action, resource);'

    error = compile_error(PolicySource("t.cedar", text))

    assert (error.line, error.reason) == (
        1,
        "policy templates (?principal/?resource slots) are not supported",
    )


def test_a_trailing_comment_does_not_swallow_the_next_file() -> None:
    policies = compile_policies(
        [PolicySource("a.cedar", LOW_RISK + "// no newline"), PolicySource("b.cedar", NO_INACTIVE)],
        SCHEMA,
    )

    assert policies.policy_ids == ("low-risk", "no-inactive")


def test_policy_error_survives_pickling() -> None:
    error = PolicyError("a.cedar", 3, "line one\nline two")

    assert str(error) == "a.cedar:3: line one; line two"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


# --- files and the shipped policies -----------------------------------------------------


def test_read_policy_dir_reads_cedar_files_in_order_and_the_schema(tmp_path: Path) -> None:
    (tmp_path / "b.cedar").write_text(NO_INACTIVE, encoding="utf-8")
    (tmp_path / "a.cedar").write_text(LOW_RISK, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a policy", encoding="utf-8")
    (tmp_path / "schema.cedarschema").write_text(SCHEMA, encoding="utf-8")

    sources, schema = read_policy_dir(tmp_path)

    assert sources == [
        PolicySource(str(tmp_path / "a.cedar"), LOW_RISK),
        PolicySource(str(tmp_path / "b.cedar"), NO_INACTIVE),
    ]
    assert schema == SCHEMA


def test_read_policy_dir_reads_a_json_schema(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema.json").write_text("{}", encoding="utf-8")

    assert read_policy_dir(tmp_path) == ([], "{}")


def test_read_policy_dir_without_schema(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text(LOW_RISK, encoding="utf-8")

    sources, schema = read_policy_dir(tmp_path)

    assert [s.text for s in sources] == [LOW_RISK]
    assert schema is None


def test_two_schema_files_are_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "schema.cedarschema.json").write_text("{}", encoding="utf-8")

    with pytest.raises(PolicyError, match="keep one"):
        read_policy_dir(tmp_path)


def test_a_missing_policy_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        read_policy_dir(tmp_path / "missing")


def test_load_policy_dir_reports_errors_with_the_file_path(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text("permit (principal, action, resource);", encoding="utf-8")

    with pytest.raises(PolicyError) as info:
        load_policy_dir(tmp_path)

    assert str(info.value).startswith(f"{tmp_path / 'a.cedar'}:1: ")


def test_load_policy_dir_reports_schema_errors_with_the_schema_path(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_text("entity User {", encoding="utf-8")

    with pytest.raises(PolicyError) as info:
        load_policy_dir(tmp_path)

    assert info.value.path == str(tmp_path / "schema.cedarschema")


def test_the_shipped_policies_validate_against_the_shipped_schema() -> None:
    policies = load_policy_dir(default_policy_dir())

    assert policies.schema is not None
    assert set(policies.policy_ids) == {
        "low-risk-self-service",
        "inactive-users-get-nothing",
        "high-risk-needs-manager-and-owner",
        "sod-payroll-admin-vs-payment-approver",
        "accord-recovery-needs-manager",
        # authn.cedar: the factor policy
        "active-users-may-sign-in",
        "locked-users-may-not-sign-in",
        "high-risk-blocks-privileged-apps",
        "mfa-off-corporate-network",
        "mfa-when-risk-is-elevated",
        "phishing-resistant-for-privileged-apps",
    }


@pytest.mark.parametrize(
    ("user_attrs", "risk", "expected"),
    [
        ({"active": True}, "low", Decision("permit", ("low-risk-self-service",))),
        # Permitted by a policy that asks for approvals (see domain/approvals.py).
        ({"active": True}, "high", Decision("permit", ("high-risk-needs-manager-and-owner",))),
        ({"active": True}, None, Decision("deny", (NO_POLICY_PERMITS,))),
        ({"active": False}, "low", Decision("deny", ("inactive-users-get-nothing",))),
        ({}, "low", Decision("deny", ("inactive-users-get-nothing",))),
    ],
)
def test_the_shipped_policies(
    user_attrs: dict[str, object], risk: str | None, expected: Decision
) -> None:
    policies = load_policy_dir(default_policy_dir())
    entitlement = Entity(GH_READ, {} if risk is None else {"risk": risk}, (GITHUB,))
    entities = [Entity(ALICE, user_attrs), entitlement, Entity(GITHUB)]

    assert decide(policies, request(ALICE, GH_READ, justification="onboarding"), entities) == (
        expected
    )


DEEP = """\
// One policy whose error is deep inside it; it starts on line 2.
@id("deep")
permit (
  principal is User,
  action == Action::"request",
  resource is Entitlement
)
when {
  principal has active &&
  principal.active &&
  {}
};
"""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("principal.active principal.active", "syntax error: unexpected token"),
        ('principal has department && principal.department.nosuch("x")', "not a valid method"),
        ('principal has department && principal.department == "\\q"', "not a valid escape"),
        ('principal has department && nosuch("x")', "not a valid function"),
        ('principal.team == "sre"', "attribute `team`"),
        ('resource in Folder::"x"', "unrecognized entity type `Folder`"),
    ],
)
def test_an_error_is_reported_at_its_line_not_at_its_policy(body: str, reason: str) -> None:
    error = compile_error(PolicySource("deep.cedar", DEEP.replace("{}", body)))

    assert (error.path, error.line) == ("deep.cedar", 11), error
    assert reason in error.reason


def test_an_unknown_action_is_reported_at_its_line() -> None:
    text = DEEP.replace('Action::"request"', 'Action::"fly"').replace("{}", "true")

    error = compile_error(PolicySource("deep.cedar", text))

    assert error.line == 5
    assert 'Action::"fly"' in error.reason


def test_a_type_error_names_nothing_to_find_so_it_is_reported_at_its_policy() -> None:
    # Cedar's message names the types only ("the types Bool and String are not compatible").
    error = compile_error(PolicySource("deep.cedar", DEEP.replace("{}", 'principal.active == "y"')))

    assert error.line == 2
    assert "types" in error.reason


def test_a_duplicate_id_is_reported_at_its_annotation() -> None:
    again = '@approval("manager")\n@id("low-risk")\npermit (principal, action, resource);\n'

    error = compile_error(PolicySource("dup.cedar", LOW_RISK + again))

    assert error.line == 5  # the policy starts on line 4, with its @approval
    assert "duplicate" in error.reason
