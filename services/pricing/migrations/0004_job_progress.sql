-- Rows stored per import job, so `finfocus ingest --wait` can follow an import by reading one
-- row; it used to add up the job's lines every half second, a scan of the whole table that
-- took more CPU than pricing itself once an import reached a few hundred thousand rows.
-- A row counts when it is stored for the first time or moves to this job from another one
-- (a restated bill); a redelivered row of the same job does not count again.
CREATE TABLE job_progress (
    import_job_id text PRIMARY KEY,
    rows bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW v_job_progress AS
SELECT import_job_id, rows, updated_at FROM job_progress;
