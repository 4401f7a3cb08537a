-- Playbook switches: an admin enables or disables a playbook by a PlaybookCommand v1 event
-- (topic playbook-commands, signed by the api or the command line), applied through the
-- consume pipeline; the switch overrides the file's `enabled` without editing it.
-- `playbook_catalog` is what the service loaded from its playbook directory (kept current
-- by the service), so readers can list playbooks without reading its files.

CREATE TABLE playbook_catalog (
    name         text PRIMARY KEY,
    mode         text NOT NULL,
    file_enabled boolean NOT NULL,
    trigger      text NOT NULL,
    actions      text[] NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE playbook_switches (
    name       text PRIMARY KEY,
    enabled    boolean NOT NULL,
    reason     text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

CREATE TABLE playbook_audit (
    command_id text PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    name       text NOT NULL,
    action     text NOT NULL CHECK (action IN ('enable', 'disable')),
    outcome    text NOT NULL CHECK (outcome IN ('applied', 'unchanged', 'refused')),
    detail     text,
    reason     text,
    actor      text NOT NULL,
    issued_at  timestamptz
);
CREATE INDEX playbook_audit_at ON playbook_audit (at);

CREATE FUNCTION playbook_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'remediation.playbook_audit is append-only';
END $$;
CREATE TRIGGER playbook_audit_no_change BEFORE UPDATE OR DELETE ON playbook_audit
    FOR EACH ROW EXECUTE FUNCTION playbook_audit_append_only();

CREATE VIEW v_playbooks AS
SELECT c.name, c.mode, c.trigger, c.actions, c.file_enabled,
       coalesce(s.enabled, c.file_enabled) AS enabled,
       s.enabled IS NOT NULL AS switched, s.reason, s.updated_at, s.updated_by
FROM playbook_catalog c
LEFT JOIN playbook_switches s USING (name);

CREATE VIEW v_playbook_audit AS
SELECT command_id, at, name, action, outcome, detail, reason, actor, issued_at FROM playbook_audit;
