"""Authn's view of an identity: the same user.* events end in the same view in any order."""

from __future__ import annotations

from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from accord.authn.domain.identity import Change, View, apply, change_of
from accord.events import (
    EventData,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)

U = "u-1"


def event_for(kind: int, n: int) -> EventData:
    """One identity event of five kinds; `n` tells apart the profiles."""
    name = f"name-{n}"
    return [
        UserCreated(user_id=U, user_name=name, active=n % 2 == 0),
        UserUpdated(user_id=U, user_name=name, email=f"{name}@example.com", active=n % 3 != 0),
        UserDeactivated(user_id=U),
        UserReactivated(user_id=U),
        UserDeleted(user_id=U),
    ][kind]


def consume(changes: list[Change]) -> View | None:
    return reduce(lambda view, change: apply(view, change) or view, changes, None)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Change], list[Change]]:
    """An identity's events with distinct sequences, in sequence order and shuffled."""
    kinds = draw(st.lists(st.integers(0, 4), min_size=1, max_size=8))
    changes = [change_of(event_for(kind, n), n + 1) for n, kind in enumerate(kinds)]
    return changes, draw(st.permutations(changes))


@given(histories())
def test_any_order_of_the_events_ends_in_the_view_their_sequence_order_gives(
    history: tuple[list[Change], list[Change]],
) -> None:
    in_order, consumed = history
    assert consume(consumed) == consume(in_order)


def test_an_update_after_a_deletion_leaves_a_leaver_whichever_is_consumed_first() -> None:
    created = change_of(UserCreated(user_id=U, user_name="ada"), 1)
    deleted = change_of(UserDeleted(user_id=U), 2)
    corrected = change_of(UserUpdated(user_id=U, user_name="ada", active=True), 3)
    for order in ([created, deleted, corrected], [created, corrected, deleted]):
        view = consume(order)
        assert view is not None
        assert (view.status, view.sequence) == ("deleted", 3)


def test_a_rehire_after_a_deletion_is_back() -> None:
    deleted = change_of(UserDeleted(user_id=U), 5)
    rehired = change_of(UserCreated(user_id=U, user_name="ada"), 7)
    for order in ([deleted, rehired], [rehired, deleted]):
        view = consume(order)
        assert view is not None
        assert view.status == "active"


def test_a_duplicate_or_an_older_event_changes_nothing() -> None:
    created = change_of(UserCreated(user_id=U, user_name="ada"), 2)
    view = apply(None, created)
    assert view is not None
    assert apply(view, created) is None
    assert apply(view, change_of(UserDeactivated(user_id=U), 1)) is None


def test_a_partial_update_sets_what_it_lists_only() -> None:
    created = change_of(UserCreated(user_id=U, user_name="ada", email="ada@example.org"), 1)
    off = change_of(UserDeactivated(user_id=U), 2)
    # An HR export that maps the e-mail only: the user name it carries is not listed, and
    # its `active` (the default, true) neither.
    mailed = UserUpdated(user_id=U, user_name="hr-ada", email="a@example.org", changed=["email"])
    view = consume([created, off, change_of(mailed, 3)])
    assert view is not None
    assert (view.user_name, view.email, view.status, view.profile_sequence) == (
        "ada",
        "a@example.org",
        "inactive",
        3,
    )
    titled = UserUpdated(user_id=U, user_name="ada", title="Lead", changed=["title"])
    assert apply(view, change_of(titled, 4)) is None  # nothing authn keeps
    back = UserUpdated(user_id=U, user_name="ada", active=True, changed=["active"])
    after = apply(view, change_of(back, 5))
    assert after is not None
    assert (after.status, after.email) == ("active", "a@example.org")


def test_a_partial_update_before_any_profile_takes_the_user_name_it_carries() -> None:
    renamed = UserUpdated(user_id=U, user_name="ada", email="a@example.org", changed=["email"])
    view = apply(None, change_of(renamed, 2))
    assert view is not None
    assert (view.user_name, view.email) == ("ada", "a@example.org")
