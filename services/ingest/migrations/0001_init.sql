-- Import jobs: one per `finfocus ingest` run (or watcher pick-up / HTTP intake batch).
-- `version` is the x_BillingScopeVersion of every row the job publishes: it only grows, so
-- a newer import of a billing scope (a restated month) supersedes the older ones downstream.
CREATE TABLE import_jobs (
    job_id          text PRIMARY KEY,
    version         bigserial UNIQUE,
    status          text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    source          text NOT NULL DEFAULT 'cli',
    format          text,
    checksum        text NOT NULL,
    files           jsonb NOT NULL DEFAULT '[]',
    providers       text[] NOT NULL DEFAULT '{}',
    accounts        text[] NOT NULL DEFAULT '{}',
    billing_periods text[] NOT NULL DEFAULT '{}',
    billing_scopes  text[] NOT NULL DEFAULT '{}',
    rows_read       bigint NOT NULL DEFAULT 0,
    rows_published  bigint NOT NULL DEFAULT 0,
    rows_rejected   bigint NOT NULL DEFAULT 0,
    totals          jsonb NOT NULL DEFAULT '{}',
    rejection_reasons jsonb NOT NULL DEFAULT '{}',
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX import_jobs_checksum ON import_jobs (checksum) WHERE status = 'completed';

-- Every refused row with its reason (the job report; the same rows go to raw-billing.dlq).
CREATE TABLE rejected_rows (
    job_id     text NOT NULL REFERENCES import_jobs (job_id) ON DELETE CASCADE,
    file       text NOT NULL,
    row_number bigint NOT NULL,
    reason     text NOT NULL,
    original   jsonb NOT NULL,
    PRIMARY KEY (job_id, file, row_number)
);

-- What a job published, compressed per chunk, so `finfocus ingest replay` can send it again
-- (the embedded broker keeps nothing across a restart).
CREATE TABLE published_chunks (
    job_id    text NOT NULL REFERENCES import_jobs (job_id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    rows      integer NOT NULL,
    scopes    text[] NOT NULL,
    payload   bytea NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE VIEW v_import_jobs AS
SELECT job_id, version, status, source, format, checksum, files, providers, accounts,
       billing_periods, billing_scopes, rows_read, rows_published, rows_rejected, totals,
       rejection_reasons, error, started_at, finished_at
FROM import_jobs;
