"""The entitlement catalogue: loading, validation and the Cedar entities it yields."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.authz.catalogue import (
    Catalogue,
    CatalogueError,
    EntitlementEntry,
    entitlement_id,
    load_catalogue,
)
from accord.authz.domain import AccessQuery, Entity, EntityRef, decide
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir

VALID = """\
applications:
  wiki:
    entitlements:
      reader: {risk: low}
      editor: {risk: high}
      draft: {}
  empty-app: {}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text)
    return path


def test_a_valid_catalogue_loads(tmp_path: Path) -> None:
    catalogue = load_catalogue(write(tmp_path, VALID))

    assert set(catalogue.applications) == {"wiki", "empty-app"}
    wiki = catalogue.applications["wiki"].entitlements
    assert wiki == {
        "reader": EntitlementEntry(risk="low"),
        "editor": EntitlementEntry(risk="high"),
        "draft": EntitlementEntry(risk=None),
    }
    assert catalogue.applications["empty-app"].entitlements == {}


@pytest.mark.parametrize("text", ["", "# nothing classified yet\n", "applications: {}\n"])
def test_an_empty_catalogue_loads(tmp_path: Path, text: str) -> None:
    assert load_catalogue(write(tmp_path, text)) == Catalogue()


@pytest.mark.parametrize(
    ("text", "offending"),
    [
        ("apps: {}\n", "apps"),
        ("applications:\n  wiki:\n    roles: {}\n", "roles"),
        ("applications:\n  wiki:\n    entitlements:\n      reader: {owner: ada}\n", "owner"),
    ],
    ids=["top-level", "application", "entitlement"],
)
def test_unknown_keys_are_refused(tmp_path: Path, text: str, offending: str) -> None:
    with pytest.raises(CatalogueError, match=offending) as caught:
        load_catalogue(write(tmp_path, text))

    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize("risk", ["medium", "HIGH", "1", "[low]", "true"])
def test_bad_risk_values_are_refused(tmp_path: Path, risk: str) -> None:
    text = f"applications:\n  wiki:\n    entitlements:\n      reader: {{risk: {risk}}}\n"

    with pytest.raises(CatalogueError, match="risk"):
        load_catalogue(write(tmp_path, text))


def test_a_missing_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"absent\.yaml"):
        load_catalogue(tmp_path / "absent.yaml")


def test_invalid_yaml_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(write(tmp_path, "applications: {wiki: [\n"))


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError):
        load_catalogue(write(tmp_path, "- wiki\n"))


def test_catalogue_error_is_a_value_error() -> None:
    assert issubclass(CatalogueError, ValueError)


# --- entities --------------------------------------------------------------------------------


def test_entitlement_id_is_qualified_by_the_application() -> None:
    assert entitlement_id("wiki", "reader") == "wiki/reader"
    assert entitlement_id("wiki", "reader") != entitlement_id("crm", "reader")


@pytest.mark.parametrize(("entitlement", "risk"), [("reader", "low"), ("editor", "high")])
def test_a_classified_entitlement_has_its_application_as_parent_and_a_risk(
    tmp_path: Path, entitlement: str, risk: str
) -> None:
    catalogue = load_catalogue(write(tmp_path, VALID))

    entities = catalogue.resource_entities("wiki", entitlement)

    app = EntityRef("Application", "wiki")
    assert entities == [
        Entity(app),
        Entity(EntityRef("Entitlement", f"wiki/{entitlement}"), {"risk": risk}, (app,)),
    ]
    assert entities[1].attrs == {"risk": risk}
    assert entities[0].parents == ()
    assert entities[0].attrs == {}


@pytest.mark.parametrize(
    ("application", "entitlement"),
    [("wiki", "draft"), ("wiki", "unknown"), ("empty-app", "x"), ("nowhere", "reader")],
    ids=["unclassified", "unknown-entitlement", "app-without-entitlements", "unknown-app"],
)
def test_an_unclassified_or_unknown_entitlement_gets_no_risk(
    tmp_path: Path, application: str, entitlement: str
) -> None:
    catalogue = load_catalogue(write(tmp_path, VALID))

    app_entity, entitlement_entity = catalogue.resource_entities(application, entitlement)

    assert app_entity.ref == EntityRef("Application", application)
    assert entitlement_entity.ref == EntityRef("Entitlement", f"{application}/{entitlement}")
    assert entitlement_entity.parents == (EntityRef("Application", application),)
    assert entitlement_entity.attrs == {}
    assert "risk" not in entitlement_entity.to_cedar()["attrs"]


# --- the shipped catalogue -------------------------------------------------------------------

SHIPPED = default_policy_dir() / "catalogue.yaml"


def test_the_shipped_catalogue_loads() -> None:
    catalogue = load_catalogue(SHIPPED)

    assert catalogue.applications
    for application, entry in catalogue.applications.items():
        for name in entry.entitlements:
            ref = catalogue.resource_entities(application, name)[1].ref
            assert ref.id == entitlement_id(application, name)
    wiki = catalogue.applications["wiki"].entitlements
    payroll = catalogue.applications["payroll"].entitlements
    assert wiki["reader"].risk == "low"
    assert payroll["admin"].risk == "high"


@pytest.mark.parametrize(
    ("application", "entitlement", "effect"),
    [
        ("wiki", "reader", "permit"),
        ("wiki", "editor", "permit"),
        ("payroll", "viewer", "permit"),  # with approvals: @approval on the policy
        ("payroll", "admin", "permit"),
        ("wiki", "unclassified", "deny"),
    ],
)
def test_the_shipped_catalogue_and_policies_work_together(
    application: str, entitlement: str, effect: str
) -> None:
    policies = load_policy_dir(default_policy_dir())
    catalogue = load_catalogue(SHIPPED)
    principal = EntityRef("User", "e-1")
    query = AccessQuery(
        principal=principal,
        action="request",
        resource=EntityRef("Entitlement", entitlement_id(application, entitlement)),
    )
    entities = [
        Entity(principal, {"active": True}),
        *catalogue.resource_entities(application, entitlement),
    ]

    decision = decide(policies, query, entities)

    assert decision.errors == ()
    assert decision.effect == effect
