-- Where the detector's walk over each series stopped, so a batch that only appends days
-- computes only those days (identical results; any change to an earlier day recomputes all).
CREATE TABLE series_state (
    monitor text NOT NULL,
    series_key text NOT NULL,
    start_day date NOT NULL,
    fingerprint text NOT NULL,             -- detector and parameters the state belongs to
    steps integer NOT NULL,
    regime_start integer NOT NULL,
    run_dir integer NOT NULL,
    run_start integer NOT NULL,
    arrays bytea NOT NULL,                 -- y, learn, expected, scores as float64
    PRIMARY KEY (monitor, series_key)
);
