"""Profiles read back from targets: which fields there are, and a forgiving reader."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from accord.events.catalogue import Profile

#: Every text field of a profile: all but `active` and the free-form `attributes`.
TEXT_FIELDS = frozenset(set(Profile.model_fields) - {"active", "attributes"})


def read_profile(values: Mapping[str, Any]) -> Profile:
    """The profile a target's account holds.

    A value a Profile cannot hold (an empty title, a malformed e-mail) reads as None, so one
    odd account does not hide the others. Raises ValueError when the user name itself is
    not one a Profile can hold.
    """
    try:
        return Profile.model_validate(values)
    except ValidationError as error:
        unreadable = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        if "user_name" in unreadable:
            raise ValueError(f"user name {values.get('user_name')!r} is not a valid one") from None
        return Profile.model_validate({k: v for k, v in values.items() if k not in unreadable})


def with_stored(profile: Profile, stored: Profile, fields: Iterable[str]) -> Profile:
    """The profile with the given fields as the target stores them."""
    return profile.model_copy(update={f: getattr(stored, f) for f in fields})
