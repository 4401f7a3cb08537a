-- Remediation: commands and their life cycle, the append-only audit log, the per-resource
-- cost lines it reads from priced-resources, recommendations, utilisation and savings.

CREATE TABLE processed_anomalies (
    anomaly_id   text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now(),
    commands     integer NOT NULL
);

CREATE TABLE commands (
    command_id               text PRIMARY KEY,
    issued_at                timestamptz NOT NULL,
    action                   text NOT NULL,
    provider                 text NOT NULL,
    account_id               text,
    region                   text,
    resource_id              text NOT NULL,
    resource_type            text,
    mode                     text NOT NULL CHECK (mode IN ('dry-run', 'execute')),
    requires_approval        boolean NOT NULL,
    expires_at               timestamptz,
    playbook                 text,
    anomaly_id               text,
    recommendation_id        text,
    expected_monthly_savings numeric,
    currency                 text,
    command                  jsonb NOT NULL,
    status                   text NOT NULL CHECK (status IN ('pending-approval', 'approved',
                                 'executed', 'dry-run', 'rejected', 'expired', 'failed')),
    result                   jsonb,
    undo                     jsonb,
    undo_requested_at        timestamptz,
    undone_at                timestamptz,
    decided_by               text,
    decided_at               timestamptz,
    decision_reason          text,
    published_at             timestamptz,
    claimed_until            timestamptz,
    executed_at              timestamptz,
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commands_status ON commands (status);
CREATE INDEX commands_account_executed ON commands (account_id, executed_at);

-- What, why, when, state before and after, result. Rows are never updated nor deleted.
CREATE TABLE audit_log (
    audit_id     bigserial PRIMARY KEY,
    command_id   text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    event        text NOT NULL,
    action       text,
    mode         text,
    actor        text NOT NULL,
    reason       text,
    state_before jsonb,
    state_after  jsonb,
    result       jsonb
);
CREATE INDEX audit_log_command ON audit_log (command_id, audit_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'remediation.audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Per-resource cost lines from priced-resources (one row per x_RecordId).
CREATE TABLE cost_lines (
    record_id             text PRIMARY KEY,
    billing_scope         text,
    billing_scope_version bigint,
    provider              text NOT NULL,
    billing_account_id    text NOT NULL,
    sub_account_id        text,
    service_name          text NOT NULL,
    region_id             text,
    resource_id           text NOT NULL,
    resource_type         text,
    sku_id                text,
    charge_description    text,
    charge_category       text NOT NULL,
    usage_date            date NOT NULL,
    billed_cost           numeric NOT NULL,
    currency              text NOT NULL,
    consumed_quantity     numeric,
    consumed_unit         text,
    tags                  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX cost_lines_resource_day ON cost_lines (resource_id, usage_date);
CREATE INDEX cost_lines_dims ON cost_lines (provider, sub_account_id, service_name, usage_date);

-- Highest version seen per billing scope: older versions are restated away.
CREATE TABLE billing_scopes (
    billing_scope text PRIMARY KEY,
    version       bigint NOT NULL
);

CREATE TABLE resource_metrics (
    resource_id    text NOT NULL,
    metric_date    date NOT NULL,
    cpu_avg_pct    numeric,
    cpu_max_pct    numeric,
    cpu_p995_pct   numeric,
    network_mb     numeric,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource_id, metric_date)
);

CREATE TABLE recommendations (
    recommendation_id        text PRIMARY KEY,
    rec_type                 text NOT NULL,
    provider                 text NOT NULL,
    account_id               text,
    region                   text,
    resource_id              text NOT NULL,
    resource_type            text,
    action                   text,
    params                   jsonb NOT NULL DEFAULT '{}'::jsonb,
    rationale                text NOT NULL,
    evidence                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    estimated_monthly_savings numeric NOT NULL,
    currency                 text NOT NULL,
    first_seen               timestamptz NOT NULL DEFAULT now(),
    last_seen                timestamptz NOT NULL DEFAULT now(),
    state                    text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'dismissed', 'snoozed', 'resolved')),
    state_reason             text,
    snoozed_until            timestamptz,
    published_at             timestamptz
);

CREATE TABLE savings (
    command_id          text PRIMARY KEY REFERENCES commands (command_id),
    computed_at         timestamptz NOT NULL DEFAULT now(),
    baseline_daily      numeric NOT NULL,
    after_daily         numeric,
    days_before         integer NOT NULL,
    days_after          integer NOT NULL,
    expected_monthly    numeric,
    realised_monthly    numeric,
    currency            text
);

CREATE VIEW v_actions AS
SELECT c.command_id, c.issued_at, c.action, c.provider, c.account_id, c.region, c.resource_id,
       c.resource_type, c.mode, c.requires_approval, c.expires_at, c.playbook, c.anomaly_id,
       c.recommendation_id, c.expected_monthly_savings, c.currency,
       CASE WHEN c.status IN ('pending-approval', 'approved') AND c.expires_at IS NOT NULL
                 AND c.expires_at < now() THEN 'expired' ELSE c.status END AS status,
       c.result, c.undo, c.undone_at, c.decided_by, c.decided_at, c.decision_reason,
       c.executed_at, c.updated_at, c.command
FROM commands c;

CREATE VIEW v_audit AS
SELECT audit_id, command_id, at, event, action, mode, actor, reason, state_before, state_after, result
FROM audit_log;

CREATE VIEW v_resource_daily_cost AS
SELECT l.provider, l.billing_account_id, l.sub_account_id, l.service_name, l.region_id,
       l.resource_id, l.resource_type, l.usage_date, l.currency, sum(l.billed_cost) AS cost
FROM cost_lines l
LEFT JOIN billing_scopes s ON s.billing_scope = l.billing_scope
WHERE l.billing_scope IS NULL OR l.billing_scope_version = s.version
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;

CREATE VIEW v_recommendations AS
SELECT recommendation_id, rec_type AS type, provider, account_id, region, resource_id,
       resource_type, action, params, rationale, evidence, estimated_monthly_savings, currency,
       first_seen, last_seen,
       CASE WHEN state = 'snoozed' AND snoozed_until <= now() THEN 'open' ELSE state END AS state,
       state_reason, snoozed_until
FROM recommendations;

CREATE VIEW v_savings AS
SELECT s.command_id, c.playbook, c.account_id, c.action, c.resource_id, c.executed_at,
       s.baseline_daily, s.after_daily, s.days_before, s.days_after, s.expected_monthly,
       s.realised_monthly, s.currency, s.computed_at
FROM savings s JOIN commands c USING (command_id);
