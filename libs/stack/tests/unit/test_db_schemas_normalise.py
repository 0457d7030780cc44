"""What the checked-in schemas leave out of pg_dump's output: what changes from run to run."""

from __future__ import annotations

from accord.stack.db_schemas import normalise

DUMP = """--
-- PostgreSQL database dump
--

\\restrict Kq0x9

-- Dumped from database version 18.1
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);


CREATE TABLE s.t (
    id text NOT NULL
);



CREATE INDEX t_id ON s.t USING btree (id);

\\unrestrict Kq0x9

"""


def test_only_the_statements_remain_one_blank_line_apart() -> None:
    assert normalise(DUMP) == (
        "CREATE TABLE s.t (\n    id text NOT NULL\n);\n\n"
        "CREATE INDEX t_id ON s.t USING btree (id);\n"
    )


def test_normalising_twice_changes_nothing() -> None:
    assert normalise(normalise(DUMP)) == normalise(DUMP)
