"""The identity registry's ordering rule: apply newer events, skip stale ones."""

from __future__ import annotations

import pytest

from accord.orchestrator.domain.identity import IdentityVersion, Verdict, judge


@pytest.mark.parametrize(
    ("current", "sequence", "creates", "expected"),
    [
        pytest.param(None, 1, True, Verdict.APPLY, id="first-creation"),
        pytest.param(None, 0, True, Verdict.APPLY, id="first-creation-at-zero"),
        pytest.param(None, 5, False, Verdict.UNKNOWN_SUBJECT, id="update-of-unknown"),
        pytest.param(IdentityVersion(3, "active"), 4, False, Verdict.APPLY, id="newer-update"),
        pytest.param(IdentityVersion(3, "active"), 10, False, Verdict.APPLY, id="gap-is-fine"),
        pytest.param(IdentityVersion(3, "active"), 3, False, Verdict.STALE, id="equal-is-stale"),
        pytest.param(IdentityVersion(3, "active"), 2, False, Verdict.STALE, id="older-is-stale"),
        pytest.param(IdentityVersion(3, "active"), 3, True, Verdict.STALE, id="duplicate-create"),
        pytest.param(IdentityVersion(3, "active"), 4, True, Verdict.APPLY, id="re-announced"),
        pytest.param(IdentityVersion(0, "active"), 0, False, Verdict.STALE, id="zero-equal"),
        pytest.param(IdentityVersion(3, "deleted"), 4, False, Verdict.APPLY, id="any-status"),
    ],
)
def test_judge(
    current: IdentityVersion | None, sequence: int, creates: bool, expected: Verdict
) -> None:
    assert judge(current, sequence, creates=creates) is expected


def test_verdicts_have_stable_string_values() -> None:
    assert [v.value for v in Verdict] == ["apply", "stale", "unknown_subject"]
