-- A writer's marks of the days it touched are held until it commits (migration 0009 only
-- inserted them ON CONFLICT DO NOTHING).
--
-- Without a hold, a day already marked by a committed write could be taken by a refresh
-- (either pricing instance's background task) between a writer's insert and its commit: the
-- refresh rebuilt the day without the uncommitted lines and removed the mark, the writer
-- committed, and its lines never reached the aggregate (found with two pricing instances:
-- a day one line short, tests/integration/test_scale_out.py).
--
-- Now a writer locks each mark FOR KEY SHARE: writers never wait on each other for it, but
-- the refresh's FOR UPDATE SKIP LOCKED leaves a held day for its next round. A mark removed
-- between the insert and the lock is inserted again (the loop); a mark a refresh is removing
-- is waited for, then inserted anew. Days are taken in order, so two writers wait on each
-- other's new marks in one order only.

CREATE FUNCTION mark_days(days date[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    held bigint;
BEGIN
    IF days IS NULL OR cardinality(days) = 0 THEN
        RETURN;
    END IF;
    LOOP
        INSERT INTO pricing.dirty_days (day)
        SELECT d FROM unnest(days) d ORDER BY d
        ON CONFLICT (day) DO NOTHING;
        SELECT count(*) INTO held FROM (
            SELECT day FROM pricing.dirty_days WHERE day = ANY (days) ORDER BY day FOR KEY SHARE
        ) k;
        EXIT WHEN held = cardinality(days);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION mark_new_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pricing.mark_days(
        (SELECT array_agg(DISTINCT (charge_period_start AT TIME ZONE 'UTC')::date) FROM new_rows));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mark_old_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pricing.mark_days(
        (SELECT array_agg(DISTINCT (charge_period_start AT TIME ZONE 'UTC')::date) FROM old_rows));
    RETURN NULL;
END $$;
