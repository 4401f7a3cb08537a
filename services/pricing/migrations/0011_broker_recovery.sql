-- Broker loss on the embedded stack (see docs/operations.md, "The embedded stack").
-- The embedded broker keeps nothing across a restart: priced records pricing had stored but a
-- downstream service had not consumed yet are gone from priced-resources. The stack passes a
-- new FINFOCUS_BROKER_EPOCH and FINFOCUS_BROKER_RECOVER_SINCE (the last moment every consumer
-- group had consumed everything); when pricing starts under an epoch it has not recorded, it
-- publishes again every line stored or updated since then, one recovery row per epoch.

-- when the line was last written (insert or update); `priced_at` is when it was priced, which
-- an earlier batch may have done before a slow commit. No index: read once per broker loss,
-- and the hot path of every stored line pays for an index.
ALTER TABLE cost_lines ADD COLUMN stored_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE broker_epoch (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE recoveries (
    recovery_id bigserial PRIMARY KEY,
    epoch       text NOT NULL,
    since       timestamptz,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows        bigint NOT NULL DEFAULT 0,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed', 'failed')),
    error       text
);

CREATE VIEW v_recoveries AS
SELECT epoch, since, started_at, finished_at, rows, state, error FROM recoveries;
