-- Who gave each verdict: the issuer whose signature the feedback command carried (unsigned or
-- forged feedback is dead-lettered and never recorded). Append-only, like remediation's audit.
ALTER TABLE feedback ADD COLUMN actor text;

CREATE TABLE feedback_audit (
    audit_id   bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    anomaly_id text NOT NULL,
    verdict    text NOT NULL,
    note       text,
    actor      text NOT NULL
);
CREATE INDEX feedback_audit_anomaly ON feedback_audit (anomaly_id, audit_id);

CREATE FUNCTION feedback_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'anomaly.feedback_audit is append-only';
END $$;
CREATE TRIGGER feedback_audit_no_change BEFORE UPDATE OR DELETE ON feedback_audit
    FOR EACH ROW EXECUTE FUNCTION feedback_audit_append_only();
