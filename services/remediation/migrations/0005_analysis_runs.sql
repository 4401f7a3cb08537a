-- One row per periodic analysis (recommendations and savings), with the instance that ran it:
-- with several instances only the leader analyses (finfocus/leader.py), and this is where
-- that shows. The service keeps the last 30 days of it.

CREATE TABLE analysis_runs (
    run_id          bigserial PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    instance        text NOT NULL,
    recommendations integer NOT NULL,
    published       integer NOT NULL,
    savings         integer NOT NULL
);
CREATE INDEX analysis_runs_started_idx ON analysis_runs (started_at);

CREATE VIEW v_analysis_runs AS SELECT * FROM analysis_runs;
