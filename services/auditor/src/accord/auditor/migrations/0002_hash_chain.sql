-- Tamper evidence: every record carries a SHA-256 chained to its predecessor (domain/chain.py).
-- record_id becomes the record's place in the chain: given by the writer under the chain
-- head's lock, so ids are gap-free and in commit order (a cursor never skips a late commit).
-- payload becomes json (kept exactly as written) so the hashed text is the stored text.
ALTER TABLE audit_log ALTER COLUMN payload TYPE json USING payload::text::json;
ALTER TABLE audit_log ALTER COLUMN record_id DROP DEFAULT;
DROP SEQUENCE IF EXISTS audit_log_record_id_seq;
ALTER TABLE audit_log ADD COLUMN prev_hash text, ADD COLUMN hash text;
-- Reports and dashboard charts select by time span.
CREATE INDEX audit_log_time ON audit_log (occurred_at);

-- One row: the last record's id and hash. Records written before this migration (if any)
-- stay unchained; the chain starts after them.
CREATE TABLE audit_chain_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    record_id  bigint  NOT NULL,
    hash       text    NOT NULL,
    chained_from bigint NOT NULL
);
INSERT INTO audit_chain_head (record_id, hash, chained_from)
SELECT coalesce(max(record_id), 0), repeat('0', 64), coalesce(max(record_id), 0) + 1
FROM audit_log;

-- Signed checkpoints of the chain head, also exported as files outside the database.
CREATE TABLE audit_checkpoints (
    record_id   bigint      PRIMARY KEY,
    hash        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    key_id      text        NOT NULL,
    signature   text        NOT NULL,
    public_key  text        NOT NULL
);

-- The auditor writes records as accord_audit_writer (SET LOCAL ROLE in each write
-- transaction): it may read and insert audit records and checkpoints, never change or remove
-- them. The trigger refuses that too, but a table's owner can drop a trigger; this role
-- cannot. In production the auditor logs in as a role that is only a member of this one.
DO $$
BEGIN
    CREATE ROLE accord_audit_writer NOLOGIN;
EXCEPTION
    WHEN duplicate_object THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'cannot create role accord_audit_writer: the auditor runs as its login role';
END $$;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'accord_audit_writer') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO accord_audit_writer', current_schema());
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I'
                       ' TO accord_audit_writer', current_schema());
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I'
                       ' TO accord_audit_writer', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE,'
                       ' DELETE ON TABLES TO accord_audit_writer', current_schema());
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM accord_audit_writer;
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_checkpoints FROM accord_audit_writer;
        BEGIN
            EXECUTE 'GRANT accord_audit_writer TO ' || quote_ident(session_user);
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
            RAISE NOTICE 'cannot grant accord_audit_writer to %', session_user;
        END;
    END IF;
END $$;
