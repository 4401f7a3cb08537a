-- Broker loss on the embedded stack (see docs/operations.md, "The embedded stack"): when the service
-- starts under a FINFOCUS_BROKER_EPOCH it has not recorded, the anomalies detected or updated
-- since FINFOCUS_BROKER_RECOVER_SINCE go back into the outbox (pending_publish) and the relay
-- publishes them again; then the epoch is recorded here.
CREATE TABLE broker_epoch (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
