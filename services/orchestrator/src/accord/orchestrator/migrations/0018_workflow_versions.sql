-- The workflow versions runs started with (issue 22): a run keeps its version across restarts,
-- even when the folder changed meanwhile, because the engine reads the version's definition
-- back from here when its memory lacks it. A row is written in the transaction that starts a
-- run, so every stored run finds its version here. A version is the hash of its canonical JSON,
-- so its definition never changes: inserted once (ON CONFLICT DO NOTHING), never updated.
-- The first insert of a new version makes a concurrent one wait for its commit (then it does
-- nothing): that happens once per version.
CREATE TABLE workflow_versions (
    workflow_id   text        NOT NULL,
    version       text        NOT NULL,
    definition    jsonb       NOT NULL,
    first_seen_at timestamptz NOT NULL,
    PRIMARY KEY (workflow_id, version)
);
