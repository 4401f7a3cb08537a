-- Broker loss on the embedded stack (see docs/operations.md, "The embedded stack"): when the service
-- starts under a FINFOCUS_BROKER_EPOCH it has not recorded, the stored commands not run yet
-- (pending approval or approved) are published again, signed, then the epoch is recorded.
CREATE TABLE broker_epoch (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
