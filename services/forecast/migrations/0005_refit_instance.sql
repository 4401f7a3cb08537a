-- Which instance ran each refit: with several instances only the leader refits
-- (finfocus/leader.py), and this is where that shows. NULL for refits recorded before.
ALTER TABLE refits ADD COLUMN instance text;

-- the view was made with the columns of the day: `SELECT *` is expanded when it is created
CREATE OR REPLACE VIEW v_refits AS SELECT * FROM refits;
