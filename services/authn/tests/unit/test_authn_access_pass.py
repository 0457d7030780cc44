"""Temporary Access Passes, the pure part: codes, hashing, bounds, states and attempts."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from accord.authn.domain import access_pass as tap
from accord.authn.domain.access_pass import AccessPassPolicy, PassState, Pepper
from accord.authn.domain.sealing import Keyring

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PEPPER = Pepper({"k1": b"\x01" * 32}, "k1")
POLICY = AccessPassPolicy()


def issued(
    *,
    lifetime: timedelta = timedelta(hours=1),
    one_time: bool = True,
    starts_at: datetime | None = None,
) -> tuple[tap.AccessPass, str]:
    return tap.issue(
        pass_id="tap-1",
        user_id="u-1",
        lifetime=lifetime,
        one_time=one_time,
        starts_at=starts_at,
        now=T0,
        created_by="helpdesk",
        pepper=PEPPER,
        policy=POLICY,
    )


def test_codes_are_grouped_characters_of_the_unambiguous_alphabet() -> None:
    codes = {tap.new_code() for _ in range(2000)}

    assert len(codes) == 2000
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4]
        assert set("".join(groups)) <= set(tap.ALPHABET)
    assert not set("01ILO") & set(tap.ALPHABET)
    assert len(set(tap.ALPHABET)) == len(tap.ALPHABET) == 31
    assert tap.CODE_LENGTH * math.log2(len(tap.ALPHABET)) > 59
    # Every character turns up: nothing in the generator skews toward part of the alphabet.
    assert set("".join(codes).replace("-", "")) == set(tap.ALPHABET)


def test_only_a_keyed_hash_is_stored_never_the_code() -> None:
    stored, code = issued()

    normal = tap.normalise(code)
    assert normal is not None
    assert stored.code_hash not in (code.encode(), normal.encode())
    assert len(stored.code_hash) == 32
    assert code not in repr(stored)
    assert stored.code_hash.hex() not in repr(stored)
    # Another key gives another hash: a dump without the key is useless.
    other = Pepper({"k1": b"\x02" * 32}, "k1")
    assert tap.redeem(stored, code, now=T0, pepper=other, policy=POLICY).accepted is False


def test_the_right_code_is_accepted_however_it_is_typed() -> None:
    stored, code = issued()

    typed = " " + code.lower().replace("-", " ") + " "
    attempt = tap.redeem(stored, typed, now=T0 + timedelta(minutes=1), pepper=PEPPER, policy=POLICY)

    assert attempt.accepted
    assert not attempt.wrong_code
    assert attempt.updated.used_at == T0 + timedelta(minutes=1)


def test_a_one_time_pass_is_spent_by_its_first_use() -> None:
    stored, code = issued(one_time=True)
    first = tap.redeem(stored, code, now=T0, pepper=PEPPER, policy=POLICY)

    again = tap.redeem(first.updated, code, now=T0, pepper=PEPPER, policy=POLICY)

    assert first.accepted
    assert not again.accepted
    assert again.refused is PassState.USED
    assert first.updated.state(T0) is PassState.USED


def test_a_reusable_pass_works_until_it_expires() -> None:
    stored, code = issued(one_time=False, lifetime=timedelta(hours=2))
    first = tap.redeem(stored, code, now=T0, pepper=PEPPER, policy=POLICY)
    later = T0 + timedelta(hours=1, minutes=59)

    second = tap.redeem(first.updated, code, now=later, pepper=PEPPER, policy=POLICY)
    after = tap.redeem(
        second.updated, code, now=T0 + timedelta(hours=2), pepper=PEPPER, policy=POLICY
    )

    assert first.accepted
    assert second.accepted
    assert second.updated.used_at == T0  # the first use
    assert not after.accepted
    assert after.refused is PassState.EXPIRED


def test_a_pass_is_not_valid_before_its_start() -> None:
    hire = T0 + timedelta(days=7)
    stored, code = issued(starts_at=hire, lifetime=timedelta(days=1))

    early = tap.redeem(stored, code, now=hire - timedelta(seconds=1), pepper=PEPPER, policy=POLICY)
    on_time = tap.redeem(stored, code, now=hire, pepper=PEPPER, policy=POLICY)

    assert stored.expires_at == hire + timedelta(days=1)
    assert not early.accepted
    assert early.refused is PassState.PENDING
    assert early.updated == stored  # a right code early counts as no failure
    assert on_time.accepted


def test_a_start_in_the_past_means_now() -> None:
    stored, _ = issued(starts_at=T0 - timedelta(days=3))

    assert stored.starts_at == T0
    assert stored.expires_at == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("lifetime", "starts_at"),
    [
        (timedelta(minutes=59), None),
        (timedelta(days=30, seconds=1), None),
        (timedelta(hours=1), T0 + timedelta(days=91)),
    ],
)
def test_lifetimes_and_starts_out_of_bounds_are_refused(
    lifetime: timedelta, starts_at: datetime | None
) -> None:
    with pytest.raises(tap.PassError):
        issued(lifetime=lifetime, starts_at=starts_at)


def test_the_bounds_themselves_are_allowed() -> None:
    assert issued(lifetime=timedelta(hours=1))[0].expires_at == T0 + timedelta(hours=1)
    assert issued(lifetime=timedelta(days=30))[0].expires_at == T0 + timedelta(days=30)


def test_wrong_codes_lock_the_pass_after_the_limit() -> None:
    stored, code = issued()
    current = stored
    for n in range(1, POLICY.max_attempts + 1):
        attempt = tap.redeem(current, "ABCD-EFGH-JKMN", now=T0, pepper=PEPPER, policy=POLICY)
        assert not attempt.accepted
        assert attempt.wrong_code
        assert attempt.updated.failed_attempts == n
        current = attempt.updated
    assert current.locked_at == T0
    assert current.state(T0) is PassState.LOCKED

    right = tap.redeem(current, code, now=T0, pepper=PEPPER, policy=POLICY)

    assert not right.accepted
    assert right.refused is PassState.LOCKED


def test_a_few_wrong_codes_do_not_stop_the_right_one() -> None:
    stored, code = issued()
    wrong = tap.redeem(stored, "not a code", now=T0, pepper=PEPPER, policy=POLICY)

    right = tap.redeem(wrong.updated, code, now=T0, pepper=PEPPER, policy=POLICY)

    assert wrong.wrong_code
    assert wrong.updated.failed_attempts == 1
    assert right.accepted


def test_a_code_from_another_pass_or_user_does_not_open_this_one() -> None:
    stored, code = issued()

    other_user = replace(stored, user_id="u-2")
    other_pass = replace(stored, pass_id="tap-2")

    assert not tap.redeem(other_user, code, now=T0, pepper=PEPPER, policy=POLICY).accepted
    assert not tap.redeem(other_pass, code, now=T0, pepper=PEPPER, policy=POLICY).accepted


def test_passes_hashed_with_an_older_key_still_verify_after_rotation() -> None:
    stored, code = issued()
    rotated = Pepper({"k2": b"\x03" * 32, "k1": b"\x01" * 32}, "k2")

    assert tap.redeem(stored, code, now=T0, pepper=rotated, policy=POLICY).accepted


def test_the_keyring_gives_distinct_subkeys_per_purpose_and_key() -> None:
    ring = Keyring([("a", b"\x01" * 32), ("b", b"\x02" * 32)])

    codes, other = ring.subkeys("access-pass-code"), ring.subkeys("something-else")

    assert set(codes) == {"a", "b"}
    assert codes["a"] != codes["b"]
    assert codes["a"] != other["a"]
    assert codes["a"] != b"\x01" * 32
    assert ring.subkeys("access-pass-code") == codes


def test_grants_are_random_and_stored_as_a_hash() -> None:
    value, digest = tap.new_grant()
    other, _ = tap.new_grant()

    assert value.startswith("eg_")
    assert value != other
    assert len(value) > 40
    assert digest == tap.grant_hash(value)
    assert value.encode() not in digest
