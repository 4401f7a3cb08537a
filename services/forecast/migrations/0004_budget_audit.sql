-- Who changed which budget: every budget command applied, with the actor its signature
-- authenticated (commands that are not signed by a trusted issuer are dead-lettered instead).
CREATE TABLE budget_audit (
    audit_id   bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    name       text NOT NULL,
    action     text NOT NULL,
    actor      text NOT NULL,
    changed    boolean NOT NULL,
    command    jsonb NOT NULL
);
CREATE INDEX budget_audit_name ON budget_audit (name, audit_id);

CREATE VIEW v_budget_audit AS
SELECT audit_id, at, name, action, actor, changed, command FROM budget_audit;

CREATE FUNCTION budget_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'forecast.budget_audit is append-only';
END $$;
CREATE TRIGGER budget_audit_no_change BEFORE UPDATE OR DELETE ON budget_audit
    FOR EACH ROW EXECUTE FUNCTION budget_audit_append_only();
