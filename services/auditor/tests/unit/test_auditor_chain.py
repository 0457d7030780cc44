"""The hash chain and signed checkpoints, as pure functions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from accord.auditor.domain.chain import GENESIS, Verification, canonical, record_hash
from accord.auditor.domain.checkpoints import (
    Checkpoint,
    load_private_key,
    new_private_key_pem,
    sign,
    signature_valid,
)
from accord.auditor.domain.export import CSV_HEADER, csv_line, ndjson_line

WHEN = datetime(2026, 11, 26, 9, 30, 0, 500, tzinfo=UTC)


def fields(record_id: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "record_id": record_id,
        "recorded_at": WHEN,
        "source_event_id": f"e{record_id}",
        "source_topic": "user.created",
        "event_type": "user.created",
        "occurred_at": WHEN,
        "actor": "urn:hr",
        "subject": "alice",
        "target": None,
        "outcome": "info",
        "correlation_id": "c1",
        "trace_id": None,
    }
    return {**base, **changes}


def chain_of(count: int) -> list[dict[str, Any]]:
    rows, previous = [], GENESIS
    for n in range(1, count + 1):
        row = {**fields(n), "payload": canonical({"n": n}), "prev_hash": previous}
        row["hash"] = record_hash(previous, row, row["payload"])
        rows.append(row)
        previous = row["hash"]
    return rows


def test_the_hash_is_sha256_of_link_fields_and_payload_as_documented() -> None:
    row = fields(1)
    expected_fields = (
        '{"actor":"urn:hr","correlation_id":"c1","event_type":"user.created",'
        '"occurred_at":"2026-11-26T09:30:00.000500+00:00","outcome":"info","record_id":1,'
        '"recorded_at":"2026-11-26T09:30:00.000500+00:00","source_event_id":"e1",'
        '"source_topic":"user.created","subject":"alice","target":null,"trace_id":null}'
    )
    text = f"{GENESIS}\n{expected_fields}\n{{}}"
    assert record_hash(GENESIS, row, "{}") == hashlib.sha256(text.encode()).hexdigest()


def test_the_same_moment_in_another_zone_hashes_the_same() -> None:
    elsewhere = WHEN.astimezone(timezone(timedelta(hours=5)))
    assert record_hash(GENESIS, fields(1, occurred_at=elsewhere), "{}") == record_hash(
        GENESIS, fields(1), "{}"
    )


def test_canonical_json_is_sorted_compact_and_ascii() -> None:
    assert canonical({"b": 1, "a": "é", "c": [1.5, None]}) == '{"a":"\\u00e9","b":1,"c":[1.5,null]}'


def test_an_untouched_chain_verifies() -> None:
    walk = Verification()
    walk.feed(chain_of(5))
    walk.against_head(5, chain_of(5)[-1]["hash"])
    assert (walk.first_break, walk.checked) == (None, 5)


@pytest.mark.parametrize(
    ("tamper", "record_id", "reason"),
    [
        (lambda rows: rows[2].update(subject="mallory"), 3, "its content does not match its hash"),
        (lambda rows: rows[2].update(payload='{"n":99}'), 3, "its content does not match its hash"),
        (
            lambda rows: rows[3].update(prev_hash="f" * 64),
            4,
            "its link to the previous record does not match",
        ),
        (lambda rows: rows.pop(1), 3, "record(s) 2 missing before it"),
    ],
)
def test_verify_names_the_first_record_that_does_not_match(
    tamper: Any, record_id: int, reason: str
) -> None:
    rows = chain_of(6)
    tamper(rows)
    walk = Verification()
    walk.feed(rows)
    assert walk.first_break is not None
    assert (walk.first_break.record_id, walk.first_break.reason) == (record_id, reason)


def test_a_rehashed_record_still_breaks_the_next_link() -> None:
    rows = chain_of(4)
    rows[1]["subject"] = "mallory"
    rows[1]["hash"] = record_hash(rows[1]["prev_hash"], rows[1], rows[1]["payload"])
    walk = Verification()
    walk.feed(rows)
    assert walk.first_break is not None
    assert walk.first_break.record_id == 3


def test_a_removed_tail_shows_against_the_head() -> None:
    rows = chain_of(5)
    walk = Verification()
    walk.feed(rows[:3])
    walk.against_head(5, rows[-1]["hash"])
    assert walk.first_break is not None
    assert walk.first_break.reason == "the chain ends at record 3, the head says 5"


def test_a_checkpoint_signature_holds_and_any_change_breaks_it() -> None:
    key = load_private_key(new_private_key_pem())
    checkpoint = sign(key, 42, "a" * 64, WHEN)
    assert signature_valid(checkpoint)
    assert signature_valid(checkpoint, key.public_key())
    assert signature_valid(Checkpoint.from_json(checkpoint.to_json()))
    moved = Checkpoint.from_json(checkpoint.to_json().replace('"record_id": 42', '"record_id": 41'))
    assert not signature_valid(moved)
    other = load_private_key(new_private_key_pem()).public_key()
    assert not signature_valid(checkpoint, other)


def test_a_file_that_is_no_checkpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="not an accord-audit-checkpoint/v1 file"):
        Checkpoint.from_json('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a checkpoint"):
        Checkpoint.from_json("[1, 2]")


def test_exports_quote_formula_cells_and_keep_payloads_as_json() -> None:
    record = {
        "record_id": 7,
        "occurred_at": WHEN,
        "subject": "=HYPERLINK(1)",
        "payload": {"b": 1, "a": "x,y"},
    }
    line = csv_line(record)
    assert CSV_HEADER.startswith("record_id,occurred_at,recorded_at,event_type")
    assert "'=HYPERLINK(1)" in line
    assert '"{""a"":""x,y"",""b"":1}"' in line
    assert '"occurred_at": "2026-11-26T09:30:00.000500+00:00"' in ndjson_line(record)
