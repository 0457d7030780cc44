"""user.updated as a partial update: `changed` names the fields it changes, `apply_update`
is the one merge rule every consumer applies, and an unknown field name is refused."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from accord.events import REGISTRY, InvalidEvent, Profile, UserUpdated, apply_update

CURRENT = Profile(
    user_name="ada",
    given_name="Ada",
    family_name="Lovelace",
    email="ada@example.org",
    title="Analyst",
    department="Research",
    manager_id="u-9",
    attributes={"site": "Lyon", "badge": "42"},
)


def test_a_full_snapshot_replaces_the_profile() -> None:
    update = UserUpdated(user_id="u-1", user_name="ada", department="Sales")
    merged = apply_update(CURRENT, update)
    assert merged == update.profile()
    assert merged.given_name is None  # a snapshot says every field, unset ones included


def test_a_partial_update_changes_the_listed_fields_only() -> None:
    update = UserUpdated(user_id="u-1", user_name="ada", department="Sales", changed=["department"])
    merged = apply_update(CURRENT, update)
    assert merged == CURRENT.model_copy(update={"department": "Sales"})


def test_unlisted_values_the_event_carries_are_ignored_user_name_included() -> None:
    update = UserUpdated(
        user_id="u-1", user_name="someone.else", title="CEO", email=None, changed=["title"]
    )
    merged = apply_update(CURRENT, update)
    assert (merged.user_name, merged.title, merged.email) == ("ada", "CEO", "ada@example.org")


def test_a_listed_user_name_changes() -> None:
    update = UserUpdated(user_id="u-1", user_name="ada.l", changed=["user_name"])
    assert apply_update(CURRENT, update) == CURRENT.model_copy(update={"user_name": "ada.l"})


def test_a_listed_field_left_unset_is_cleared() -> None:
    update = UserUpdated(user_id="u-1", user_name="ada", changed=["manager_id", "title"])
    merged = apply_update(CURRENT, update)
    assert (merged.manager_id, merged.title, merged.department) == (None, None, "Research")


def test_active_changes_only_when_listed() -> None:
    inactive = CURRENT.model_copy(update={"active": False})
    kept = UserUpdated(user_id="u-1", user_name="ada", title="Lead", changed=["title"])
    assert apply_update(inactive, kept).active is False
    listed = UserUpdated(user_id="u-1", user_name="ada", active=True, changed=["active"])
    assert apply_update(inactive, listed).active is True


def test_attributes_merge_one_by_one() -> None:
    update = UserUpdated(
        user_id="u-1",
        user_name="ada",
        attributes={"site": "Paris", "floor": "3"},
        changed=["attributes.site", "attributes.room"],
    )
    merged = apply_update(CURRENT, update)
    # site set, room (listed, absent) removed though it was not there, badge kept, floor
    # (carried, not listed) ignored
    assert merged.attributes == {"site": "Paris", "badge": "42"}
    removed = UserUpdated(user_id="u-1", user_name="ada", changed=["attributes.badge"])
    assert apply_update(CURRENT, removed).attributes == {"site": "Lyon"}


def test_listing_attributes_replaces_all_of_them() -> None:
    update = UserUpdated(
        user_id="u-1", user_name="ada", attributes={"floor": "3"}, changed=["attributes"]
    )
    assert apply_update(CURRENT, update).attributes == {"floor": "3"}


def test_a_merge_beyond_the_attribute_limit_is_a_value_error() -> None:
    full = CURRENT.model_copy(update={"attributes": {f"a{i}": "x" for i in range(64)}})
    update = UserUpdated(
        user_id="u-1", user_name="ada", attributes={"more": "x"}, changed=["attributes.more"]
    )
    with pytest.raises(ValueError, match="attributes"):
        apply_update(full, update)


@pytest.mark.parametrize(
    "names", [["departmnet"], ["user_id"], ["changed"], ["attributes."], ["Department"], []]
)
def test_an_unknown_or_empty_field_list_is_refused(names: list[str]) -> None:
    with pytest.raises(ValidationError):
        UserUpdated(user_id="u-1", user_name="ada", changed=names)


def test_an_unknown_field_name_from_kafka_is_invalid_with_the_reason() -> None:
    data = {"user_id": "u-1", "user_name": "ada", "changed": ["department", "departmnet"]}
    with pytest.raises(InvalidEvent, match="'departmnet' is not a profile field"):
        REGISTRY.parse("user.updated", 1, json.dumps(data).encode())


def test_a_partial_update_reads_back_as_built_and_stays_v1() -> None:
    update = UserUpdated(
        user_id="u-1", user_name="ada", department="Sales", changed=["department", "attributes.x"]
    )
    assert REGISTRY.spec("user.updated").version == 1  # additive and optional: still v1
    parsed = REGISTRY.parse("user.updated", 1, update.model_dump(mode="json"))
    assert parsed == update
    snapshot = {"user_id": "u-1", "user_name": "ada"}  # what publishers sent before
    assert REGISTRY.parse("user.updated", 1, snapshot) == UserUpdated(**snapshot)


def test_the_profile_of_a_partial_update_leaves_changed_out() -> None:
    update = UserUpdated(user_id="u-1", user_name="ada", changed=["title"])
    assert "changed" not in update.profile().model_dump()


def test_sets_says_which_fields_an_update_sets() -> None:
    snapshot = UserUpdated(user_id="u-1", user_name="ada")
    assert snapshot.sets("department")
    assert snapshot.sets("attributes.site")
    partial = UserUpdated(user_id="u-1", user_name="ada", changed=["title", "attributes.site"])
    assert [partial.sets(n) for n in ("title", "user_name", "active", "attributes.site")] == [
        True,
        False,
        False,
        True,
    ]
    assert not partial.sets("attributes.badge")
    every = UserUpdated(user_id="u-1", user_name="ada", changed=["attributes"])
    assert every.sets("attributes.badge")
    assert not every.sets("title")
