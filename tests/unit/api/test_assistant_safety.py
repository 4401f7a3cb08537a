"""The assistant's SQL gate: each rule, proven by a query that breaks it (and by some that pass).

Whatever an engine proposes (the offline rules, a language model, a model misled by a tag
value) goes through `safety.check`; these are the attacks it must stop.
"""

from __future__ import annotations

import pytest

from services.api.assistant.safety import UnsafeQuery, check

V = "pricing.v_cost_lines"

REFUSED = [
    # writes and DDL
    ("DELETE FROM pricing.cost_lines", "only SELECT"),
    ("UPDATE pricing.cost_lines SET billed_cost = 0", "only SELECT"),
    ("INSERT INTO pricing.cost_lines (record_id) VALUES ('x')", "only SELECT"),
    ("DROP TABLE pricing.cost_lines", "only SELECT"),
    ("TRUNCATE pricing.cost_lines", "only SELECT"),
    ("CREATE TABLE x AS SELECT * FROM pricing.v_cost_lines", "only SELECT"),
    ("ALTER TABLE pricing.cost_lines ADD COLUMN x int", "only SELECT"),
    ("GRANT ALL ON pricing.cost_lines TO public", "only SELECT"),
    ("COPY pricing.cost_lines TO '/tmp/out.csv'", "only SELECT"),
    ("SELECT * INTO stolen FROM pricing.v_cost_lines", "INTO"),
    ("WITH d AS (DELETE FROM pricing.cost_lines RETURNING *) SELECT * FROM d", "DELETE"),
    ("WITH u AS (UPDATE pricing.cost_lines SET tags = '{}' RETURNING 1) SELECT * FROM u", "UPDATE"),
    (
        "WITH i AS (INSERT INTO pricing.cost_lines (record_id) VALUES ('x') RETURNING 1) SELECT * FROM i",
        "INSERT",
    ),
    ("SELECT * FROM pricing.v_cost_lines FOR UPDATE", "LOCK"),
    ("SET statement_timeout = 0", "only SELECT"),
    ("SET ROLE postgres", "only SELECT"),
    ("BEGIN", "only SELECT"),
    ("VACUUM pricing.cost_lines", "only SELECT"),
    # several statements
    (f"SELECT 1 FROM {V}; DROP TABLE pricing.cost_lines", "exactly one statement"),
    (f"SELECT 1 FROM {V}; SELECT 2 FROM {V}", "exactly one statement"),
    # comments
    (f"SELECT 1 FROM {V} -- AND service_name = 'x'", "comments"),
    (f"SELECT 1 FROM {V} /* hidden */", "comments"),
    (f"SELECT /* ; DROP TABLE x; */ 1 FROM {V}", "comments"),
    (f"SELECT 1 FROM {V} /* unterminated", "not valid SQL"),
    # functions that sleep, read files or the network, or change settings
    (f"SELECT pg_sleep(10) FROM {V}", "pg_sleep"),
    (f"SELECT pg_read_file('/etc/passwd') FROM {V}", "pg_read_file"),
    (f"SELECT pg_ls_dir('.') FROM {V}", "pg_ls_dir"),
    (f"SELECT lo_import('/etc/passwd') FROM {V}", "lo_import"),
    (f"SELECT lo_create(0) FROM {V}", "lo_create"),  # a write a READ ONLY transaction lets by
    (f"SELECT dblink('host=evil', 'select 1') FROM {V}", "dblink"),
    (f"SELECT set_config('statement_timeout', '0', false) FROM {V}", "set_config"),
    (f"SELECT current_setting('data_directory') FROM {V}", "current_setting"),
    (f"SELECT query_to_xml('select * from pg_authid', true, true, '') FROM {V}", "query_to_xml"),
    (f"SELECT pg_terminate_backend(1) FROM {V}", "pg_terminate_backend"),
    (f"SELECT repeat('x', 1000000000) FROM {V}", "repeat"),
    ("SELECT * FROM pg_ls_dir('/')", "pg_ls_dir"),
    ("SELECT * FROM generate_series(1, 10)", "no allowed view"),
    # system catalogs, other schemas, tables behind the views
    ("SELECT * FROM pg_catalog.pg_authid", "not an allowed view"),
    ("SELECT * FROM pg_authid", "schema"),
    ("SELECT * FROM information_schema.tables", "not an allowed view"),
    ("SELECT * FROM pg_shadow", "schema"),
    ("SELECT * FROM pricing.cost_lines", "not an allowed view"),
    ("SELECT * FROM api.tokens", "not an allowed view"),
    ("SELECT * FROM remediation.audit_log", "not an allowed view"),
    (f"SELECT * FROM {V} UNION ALL SELECT * FROM pg_catalog.pg_user", "not an allowed view"),
    (f"SELECT * FROM {V} WHERE record_id IN (SELECT usename FROM pg_user)", "schema"),
    (f"SELECT (SELECT passwd FROM pg_catalog.pg_shadow LIMIT 1) FROM {V}", "not an allowed view"),
    ("SELECT * FROM otherdb.pricing.v_cost_lines", "database-qualified"),
    (f"SELECT 'pg_authid'::regclass FROM {V}", "cast"),
    (f"SELECT 'pg_sleep'::regproc FROM {V}", "cast"),
    # recursion, parameters, no statement at all
    (
        f"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r, {V}",
        "recursive",
    ),
    (f"SELECT * FROM {V} WHERE record_id = $1", "parameter"),
    ("", "empty"),
    ("   ", "empty"),
    ("SELECT 1", "no allowed view"),
    ("this is not sql", "only SELECT"),
    (f"SELECT 1 FROM {V}\x00", "NUL"),
]


@pytest.mark.parametrize(("sql", "reason"), REFUSED, ids=[f"{i:02d}" for i in range(len(REFUSED))])
def test_unsafe_query_is_refused_with_its_reason(sql, reason):
    with pytest.raises(UnsafeQuery) as info:
        check(sql)
    assert reason.lower() in str(info.value).lower()


def test_the_adversarial_set_is_large():
    assert len(REFUSED) >= 40


ACCEPTED = [
    f"SELECT billing_currency, sum(billed_cost) FROM {V} WHERE service_name = 'AmazonEC2' GROUP BY 1",
    f"WITH t AS (SELECT service_name, sum(billed_cost) AS c FROM {V} GROUP BY 1) SELECT * FROM t ORDER BY c DESC LIMIT 5",
    f"SELECT to_char(charge_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS d, sum(billed_cost) FROM {V} GROUP BY 1",
    f"SELECT k, count(*) FROM {V}, jsonb_each_text(tags) AS e(k, v) GROUP BY 1",
    "SELECT anomaly_id, dimension ->> 'ServiceName' FROM anomaly.v_anomalies ORDER BY impact DESC LIMIT 1",
    "SELECT name FROM forecast.v_budgets WHERE projected > amount",
    f"SELECT 1 FROM {V} WHERE tags ->> 'note' = 'a -- b /* c */ ; DROP TABLE x'",
    f"SELECT sum(billed_cost) FILTER (WHERE NOT tags ? 'team') FROM {V}",
    f"SELECT service_name, lag(sum(billed_cost)) OVER (ORDER BY service_name) FROM {V} GROUP BY 1",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_ordinary_read_only_questions_pass(sql):
    checked = check(sql)
    assert checked.views and checked.sql.upper().startswith(("SELECT", "WITH"))


def test_what_runs_is_the_regenerated_statement_not_the_text():
    checked = check(f"select   SUM(billed_cost)\n from {V} where tags->>'note' = 'it''s'")
    assert checked.sql == f"SELECT SUM(billed_cost) FROM {V} WHERE tags ->> 'note' = 'it''s'"
    assert checked.views == ("pricing.v_cost_lines",)


def test_a_string_that_looks_like_sql_stays_a_string():
    checked = check(
        f"SELECT 1 FROM {V} WHERE service_name = '''; DROP TABLE pricing.cost_lines; --'"
    )
    assert "DROP TABLE" in checked.sql and checked.sql.count("'") % 2 == 0
    assert checked.sql.endswith("'''; DROP TABLE pricing.cost_lines; --'")
