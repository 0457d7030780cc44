"""`accord token` without a database: durations and argument checks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accord.events.cli import main
from accord.runtime.security.cli import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("1d", timedelta(days=1)),
        ("0m", timedelta(0)),
        ("  7d\n", timedelta(days=7)),
        ("3660d", timedelta(days=3660)),
        ("1440m", timedelta(days=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "d", "90", "5x", "90 d", "1.5d", "-1d", "+1d", "90D", "1d2h", "1w", "1s", "90dd", "d90"],
)
def test_parse_duration_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_parse_duration_refuses_an_absurd_number() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError will do
        parse_duration("99999999999d")


def test_create_with_an_absurd_lifetime_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    code = main(
        ["token", "create", "--subject", "x", "--role", "admin", "--expires-in", "99999999999d"]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("accord: error: ")


def test_token_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token"])
    assert exit_info.value.code == 2


def test_create_needs_subject_and_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "create", "--role", "admin"])
    assert exit_info.value.code == 2
    assert "--subject" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "create", "--subject", "x"])
    assert exit_info.value.code == 2
    assert "--role" in capsys.readouterr().err


def test_unknown_scope_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "create", "--subject", "x", "--role", "admin", "--scope", "all"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
