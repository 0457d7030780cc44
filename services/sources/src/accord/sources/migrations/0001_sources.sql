-- The identities Accord has, from every source (SCIM, Kafka, the sources of this service),
-- fed by user.* events: what correlation matches a new row against, which user names are
-- taken, the last sequence of each identity (a source's next event for it follows it), and
-- its status (a row linked to a leaver or a suspended identity brings it back).
-- Written only when the event's sequence is newer, so a late or repeated event changes nothing.
CREATE TABLE identities (
    user_id          text    PRIMARY KEY,
    user_name        text,
    employee_number  text,
    email            text,
    sequence         bigint  NOT NULL,
    status           text    NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'inactive', 'deleted'))
);
CREATE INDEX identities_by_employee_number ON identities (employee_number);
CREATE INDEX identities_by_email ON identities (lower(email));

-- Per source that has published: the mapped fields its keys' digests are in, in order.
CREATE TABLE sources (
    name    text   PRIMARY KEY,
    fields  text[] NOT NULL
);

-- The last state Accord has from a source, per key (accord.sources.diff.KeyState): no copy
-- of the HR data, one 8-byte digest per field. `sequence` is the last sequence this source
-- gave the key's identity.
CREATE TABLE source_keys (
    source     text   NOT NULL,
    key        text   NOT NULL,
    user_id    text   NOT NULL,
    status     text   NOT NULL CHECK (status IN ('active', 'inactive', 'deleted')),
    user_name  text   NOT NULL,
    digest     bytea  NOT NULL,
    sequence   bigint NOT NULL,
    PRIMARY KEY (source, key)
);

-- Every run: what it read, what it published or holds, who decided.
CREATE TABLE runs (
    run_id         text        PRIMARY KEY,
    source         text        NOT NULL,
    status         text        NOT NULL
                   CHECK (status IN ('published', 'held', 'approved', 'rejected', 'failed')),
    trigger        text        NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    rows_read      integer     NOT NULL DEFAULT 0,
    counts         jsonb       NOT NULL DEFAULT '{}',
    problem_count  integer     NOT NULL DEFAULT 0,
    problems       jsonb       NOT NULL DEFAULT '[]',
    reason         text,
    decided_by     text,
    decided_at     timestamptz
);
CREATE INDEX runs_by_source ON runs (source, started_at DESC);
-- A source waits for its held run to be decided: at most one held run each.
CREATE UNIQUE INDEX runs_one_held_per_source ON runs (source) WHERE status = 'held';

-- A held run's output, kept as it was planned: approved, it is published as is.
CREATE TABLE held_events (
    run_id    text    NOT NULL REFERENCES runs ON DELETE CASCADE,
    position  integer NOT NULL,
    event_id  text    NOT NULL,
    topic     text    NOT NULL,
    key       bytea   NOT NULL,
    value     bytea   NOT NULL,
    headers   jsonb   NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE held_keys (
    run_id     text   NOT NULL REFERENCES runs ON DELETE CASCADE,
    key        text   NOT NULL,
    user_id    text   NOT NULL,
    status     text   NOT NULL,
    user_name  text   NOT NULL,
    digest     bytea  NOT NULL,
    sequence   bigint NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE held_fields (
    run_id  text   PRIMARY KEY REFERENCES runs ON DELETE CASCADE,
    fields  text[] NOT NULL
);
