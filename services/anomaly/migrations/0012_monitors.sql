-- Monitors are the anomaly service's own data, changed only by MonitorCommand v1 events
-- (topic monitor-commands, signed by the api or the command line) applied through the consume
-- pipeline; `v_monitors` is what the detectors use, `v_monitor_audit` who changed what.
--
-- The first start after this migration imports the monitors YAML file (or the default
-- monitor) once, audited as actor `file` (services/anomaly/monitors.py); `monitor_setup`
-- says it happened, so the file is never read again.

CREATE TABLE monitors (
    name       text PRIMARY KEY,
    spec       jsonb NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

CREATE TABLE monitor_setup (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    imported_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL
);

CREATE TABLE monitor_audit (
    command_id text PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    name       text NOT NULL,
    action     text NOT NULL CHECK (action IN ('set', 'remove')),
    spec       jsonb,
    outcome    text NOT NULL CHECK (outcome IN ('applied', 'unchanged', 'refused')),
    detail     text,
    actor      text NOT NULL,
    issued_at  timestamptz
);
CREATE INDEX monitor_audit_at ON monitor_audit (at);

CREATE FUNCTION monitor_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'anomaly.monitor_audit is append-only';
END $$;
CREATE TRIGGER monitor_audit_no_change BEFORE UPDATE OR DELETE ON monitor_audit
    FOR EACH ROW EXECUTE FUNCTION monitor_audit_append_only();

CREATE VIEW v_monitors AS
SELECT name, spec, version, updated_at, updated_by FROM monitors;

CREATE VIEW v_monitor_audit AS
SELECT command_id, at, name, action, spec, outcome, detail, actor, issued_at FROM monitor_audit;
