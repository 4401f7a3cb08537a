-- Tracking records become insert-only (one row per committed chunk), so concurrent writes
-- never queue on the same tracking row; consumer_positions stays readable as a view.
DROP TABLE consumer_positions;

CREATE TABLE processed_batches (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    first_offset bigint NOT NULL,
    last_offset  bigint NOT NULL,
    records      bigint NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW consumer_positions AS
SELECT topic, partition, max(last_offset) AS last_offset, sum(records) AS records,
       max(processed_at) AS updated_at
FROM processed_batches GROUP BY topic, partition;
