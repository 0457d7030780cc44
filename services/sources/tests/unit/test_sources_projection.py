"""What the projection keeps of each identity event: a partial update sets only what it
lists, a status event only the deleted flag, anything else nothing."""

from __future__ import annotations

from accord.events import (
    GroupCreated,
    UserCreated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    new_event,
)
from accord.sources.projection import facts_of


def test_a_creation_sets_every_kept_field() -> None:
    event = new_event(
        UserCreated(user_id="u1", user_name="ada", employee_number="E1", email="a@x.org"),
        source="s",
        sequence=3,
    )
    facts = facts_of(event)
    assert facts is not None
    assert (facts.user_id, facts.sequence, facts.user_name) == ("u1", 3, "ada")
    assert (facts.employee_number, facts.email) == ("E1", "a@x.org")
    assert facts.sets == {"user_name", "employee_number", "email", "status"}
    assert facts.status == "active"


def test_a_partial_update_sets_only_what_it_lists() -> None:
    data = UserUpdated(user_id="u1", user_name="ada", email="new@x.org", changed=["email"])
    facts = facts_of(new_event(data, source="s", sequence=4))
    assert facts is not None
    assert facts.sets == {"email"}
    suspended = UserUpdated(user_id="u1", user_name="ada", active=False, changed=["active"])
    listed = facts_of(new_event(suspended, source="s", sequence=4))
    assert listed is not None
    assert (listed.sets, listed.status) == ({"active"}, "inactive")
    snapshot = UserUpdated(user_id="u1", user_name="ada")
    full = facts_of(new_event(snapshot, source="s", sequence=5))
    assert full is not None
    assert full.sets == {"user_name", "employee_number", "email", "active"}


def test_status_events_set_the_status_only() -> None:
    gone = facts_of(new_event(UserDeleted(user_id="u1"), source="s", sequence=6))
    back = facts_of(new_event(UserReactivated(user_id="u1"), source="s", sequence=7))
    assert gone is not None
    assert back is not None
    assert (gone.status, gone.sets, back.status) == ("deleted", {"status"}, "active")


def test_other_events_are_not_projected() -> None:
    group = GroupCreated(group_id="g1", display_name="Sales")
    assert facts_of(new_event(group, source="s", sequence=1)) is None
