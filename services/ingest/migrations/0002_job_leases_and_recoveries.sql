-- Jobs that cannot lie (see docs/ingest.md, "Import jobs").
-- A job stages every chunk of its files here before it publishes any (phase `staging`), then
-- publishes them with acks=all (phase `publishing`, `chunks_published` counting acknowledged
-- chunks) and is `completed` only when all are acknowledged. While it runs its process holds a
-- lease (`lease_until`, renewed by a heartbeat); a running job whose lease expired is
-- `abandoned`: the ingest service finishes publishing it if staging had completed, and marks
-- it failed (with its staged chunks dropped) if not.
ALTER TABLE import_jobs DROP CONSTRAINT IF EXISTS import_jobs_status_check;
ALTER TABLE import_jobs ADD CONSTRAINT import_jobs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'abandoned'));
ALTER TABLE import_jobs
    ADD COLUMN phase text NOT NULL DEFAULT 'staging' CHECK (phase IN ('staging', 'publishing', 'done')),
    ADD COLUMN lease_owner text,
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN chunks_staged integer NOT NULL DEFAULT 0,
    ADD COLUMN chunks_published integer NOT NULL DEFAULT 0,
    -- per billing scope: {"rows": n, "totals": {"USD": "12.5"}} of the accepted rows
    ADD COLUMN scope_figures jsonb NOT NULL DEFAULT '{}';
UPDATE import_jobs SET phase = 'done' WHERE status <> 'running';
CREATE INDEX import_jobs_unfinished ON import_jobs (lease_until) WHERE status IN ('running', 'abandoned');

-- The embedded broker keeps nothing across a restart. The stack passes FINFOCUS_BROKER_EPOCH
-- (new for each broker process); when the ingest service starts under an epoch it has not
-- recorded, it publishes the kept chunks of the completed jobs again, one recovery row each.
CREATE TABLE broker_epoch (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE recoveries (
    recovery_id bigserial PRIMARY KEY,
    epoch       text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    jobs        integer NOT NULL DEFAULT 0,
    rows        bigint NOT NULL DEFAULT 0,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed', 'failed')),
    error       text
);

CREATE VIEW v_recoveries AS
SELECT epoch, started_at, finished_at, jobs, rows, state, error FROM recoveries;

DROP VIEW v_import_jobs;
CREATE VIEW v_import_jobs AS
SELECT job_id, version,
       CASE WHEN status = 'running' AND coalesce(lease_until < now(), true) THEN 'abandoned'
            ELSE status END AS status,
       source, format, checksum, files, providers, accounts,
       billing_periods, billing_scopes, rows_read, rows_published, rows_rejected, totals,
       rejection_reasons, error, started_at, finished_at, phase, chunks_staged,
       chunks_published, heartbeat_at, lease_until, scope_figures
FROM import_jobs;
