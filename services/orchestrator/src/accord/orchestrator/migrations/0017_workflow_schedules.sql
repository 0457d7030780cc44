-- Cron-scheduled workflows (issue 22): per workflow, the last schedule time it ran for, shared
-- by every orchestrator and kept across restarts. A poll claims the rows with
-- SELECT ... FOR UPDATE SKIP LOCKED, so one orchestrator at a time works on a schedule.
-- A schedule time that fell due is run over the registry a page of identities per
-- transaction: `running_slot` is the time being run and `cursor` the last identity done,
-- so a restart goes on where the last committed page ended (the run ids, derived from the
-- workflow, version, time and identity, make a page done twice start nothing twice).
-- A workflow seen for the first time gets a row with last_run_at = then: its schedule
-- counts from when it was deployed.
CREATE TABLE workflow_schedules (
    workflow_id  text        PRIMARY KEY,
    last_run_at  timestamptz NOT NULL,
    running_slot timestamptz,
    cursor       text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
