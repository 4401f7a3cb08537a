-- The daily detection cost of each monitored series, kept up to date by every batch with
-- the change its lines make (a delta), so a batch reads the days of its series instead of
-- adding up every stored line of them again (which made a large import quadratic).
CREATE TABLE series_points (
    monitor_ref text NOT NULL,             -- monitor name and a hash of its dimensions and filters
    series_key text NOT NULL,
    day date NOT NULL,
    cost numeric NOT NULL,                 -- priced, non-recurring cost of the day's live lines
    high timestamptz NOT NULL,             -- latest ChargePeriodEnd of the day's live lines
    PRIMARY KEY (monitor_ref, series_key, day)
);

-- A restated billing scope (a newer version) bumps the epoch. Points of a series computed
-- under an older epoch may still hold superseded lines: its next batch recomputes them
-- from the lines, as does a series (or a monitor definition) seen for the first time.
CREATE TABLE points_epoch (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch bigint NOT NULL
);
INSERT INTO points_epoch VALUES (true, 0);

CREATE TABLE series_points_epoch (
    monitor_ref text NOT NULL,
    series_key text NOT NULL,
    epoch bigint NOT NULL,
    PRIMARY KEY (monitor_ref, series_key)
);
