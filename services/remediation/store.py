"""The `remediation` schema: its SQL and its queries, nothing else's.

Functions take an asyncpg connection so the service (pool) and the CLI's write commands
(approve, reject, undo, dismiss) share one implementation: the CLI never writes tables itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from schemas.remediation import RemediationCommandV1

INSERT_PROCESSED_ANOMALY = """
INSERT INTO remediation.processed_anomalies (anomaly_id, commands) VALUES ($1, $2)
ON CONFLICT (anomaly_id) DO NOTHING RETURNING anomaly_id"""

INSERT_COMMAND = """
INSERT INTO remediation.commands (command_id, issued_at, action, provider, account_id, region,
    resource_id, resource_type, mode, requires_approval, expires_at, playbook, anomaly_id,
    recommendation_id, expected_monthly_savings, currency, command, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (command_id) DO NOTHING RETURNING command_id"""

INSERT_AUDIT = """
INSERT INTO remediation.audit_log (command_id, event, action, mode, actor, reason, state_before,
    state_after, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"""

UNPUBLISHED_OF_ANOMALY = """
SELECT command FROM remediation.commands WHERE anomaly_id = $1 AND published_at IS NULL"""

MARK_PUBLISHED = (
    "UPDATE remediation.commands SET published_at = now() WHERE command_id = ANY($1::text[])"
)

SELECT_COMMAND = "SELECT * FROM remediation.commands WHERE command_id = $1"

CLAIM = """
UPDATE remediation.commands SET claimed_until = $2
WHERE command_id = $1 AND (claimed_until IS NULL OR claimed_until < $3) RETURNING *"""

RELEASE = "UPDATE remediation.commands SET claimed_until = NULL WHERE command_id = $1"

SET_STATUS = """
UPDATE remediation.commands SET status = $2, result = $3, updated_at = now(),
    executed_at = CASE WHEN $4 THEN $5 ELSE executed_at END,
    undo = COALESCE($6, undo)
WHERE command_id = $1"""

EXECUTED_IN_WINDOW = """
SELECT count(*) FROM remediation.commands
WHERE account_id IS NOT DISTINCT FROM $1 AND mode = 'execute' AND status = 'executed'
  AND executed_at > $2 AND (result->>'outcome') = 'done'"""

DUE_COMMANDS = """
SELECT command_id FROM remediation.commands
WHERE (status = 'approved' OR (status = 'pending-approval' AND expires_at < $1)
       OR (undo_requested_at IS NOT NULL AND undone_at IS NULL))
  AND (claimed_until IS NULL OR claimed_until < $1)
ORDER BY issued_at LIMIT $2"""

DECIDE = """
UPDATE remediation.commands SET status = $2, decided_by = $3, decided_at = now(),
    decision_reason = $4, updated_at = now()
WHERE command_id = $1 AND status = 'pending-approval' AND (expires_at IS NULL OR expires_at > now())
RETURNING command_id"""


def _json(value: Any) -> Any:
    """JSON-safe copy (Decimal and dates as strings) for jsonb parameters."""
    return json.loads(json.dumps(value, default=str)) if value is not None else None


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


async def append_audit(
    conn: asyncpg.Connection,
    command_id: str,
    event: str,
    *,
    actor: str,
    action: str | None = None,
    mode: str | None = None,
    reason: str | None = None,
    state_before: Any = None,
    state_after: Any = None,
    result: Any = None,
) -> None:
    await conn.execute(
        INSERT_AUDIT,
        command_id,
        event,
        action,
        mode,
        actor,
        reason,
        _json(state_before),
        _json(state_after),
        _json(result),
    )


async def insert_command(
    conn: asyncpg.Connection, command: RemediationCommandV1, status: str, *, actor: str
) -> bool:
    """Insert a command (and its 'issued' audit row) unless its id exists; True when new."""
    doc = command.model_dump(mode="json")
    row = await conn.fetchrow(
        INSERT_COMMAND,
        command.command_id,
        command.issued_at,
        command.action,
        command.target.provider,
        command.target.account_id,
        command.target.region,
        command.target.resource_id,
        command.target.resource_type,
        command.mode.value,
        command.requires_approval,
        command.expires_at,
        command.playbook,
        command.reason.anomaly_id,
        command.reason.recommendation_id,
        command.expected_monthly_savings,
        command.currency,
        doc,
        status,
    )
    if row is None:
        return False
    await append_audit(
        conn,
        command.command_id,
        "issued",
        actor=actor,
        action=command.action,
        mode=command.mode.value,
        reason=command.reason.text,
        result={"status": status, "playbook": command.playbook},
    )
    return True


async def record_anomaly_commands(
    conn: asyncpg.Connection, anomaly_id: str, planned: list[tuple[RemediationCommandV1, str]]
) -> list[RemediationCommandV1]:
    """Record an anomaly as processed with its commands; returns the commands to publish.

    A redelivered anomaly inserts nothing and returns only commands never published (a crash
    between commit and publish), so the topic sees each command once in the normal case.
    """
    first = await conn.fetchrow(INSERT_PROCESSED_ANOMALY, anomaly_id, len(planned))
    if first is not None:
        new = [
            cmd
            for cmd, status in planned
            if await insert_command(conn, cmd, status, actor="planner")
        ]
        return new
    rows = await conn.fetch(UNPUBLISHED_OF_ANOMALY, anomaly_id)
    return [RemediationCommandV1.model_validate(r["command"]) for r in rows]


async def cancel_for_cause(conn: asyncpg.Connection, *, anomaly_id: str, reason: str) -> list[str]:
    """Reject the commands of an anomaly that have not run yet (the anomaly was resolved)."""
    rows = await conn.fetch(
        "UPDATE remediation.commands SET status = 'rejected', updated_at = now(), result = $2 "
        "WHERE anomaly_id = $1 AND status IN ('pending-approval', 'approved') RETURNING command_id",
        anomaly_id,
        _json({"outcome": "cancelled", "detail": reason}),
    )
    for r in rows:
        await append_audit(conn, r["command_id"], "cancelled", actor="planner", reason=reason)
    return [r["command_id"] for r in rows]


async def last_epoch(conn: asyncpg.Connection) -> str | None:
    return await conn.fetchval("SELECT epoch FROM remediation.broker_epoch")


async def record_epoch(conn: asyncpg.Connection, epoch: str) -> None:
    await conn.execute(
        "INSERT INTO remediation.broker_epoch (epoch) VALUES ($1) ON CONFLICT (only_row) "
        "DO UPDATE SET epoch = EXCLUDED.epoch, recorded_at = now()",
        epoch,
    )


async def commands_not_run(conn: asyncpg.Connection) -> list[RemediationCommandV1]:
    """The stored commands still waiting (approval, or their turn): after a broker loss, the
    executor or a listener may never have seen them on the topic."""
    rows = await conn.fetch(
        "SELECT command FROM remediation.commands "
        "WHERE status IN ('pending-approval', 'approved') ORDER BY issued_at"
    )
    return [RemediationCommandV1.model_validate(r["command"]) for r in rows]


async def mark_published(conn: asyncpg.Connection, command_ids: list[str]) -> None:
    if command_ids:
        await conn.execute(MARK_PUBLISHED, command_ids)


async def status_for_update(conn: asyncpg.Connection, command_id: str) -> str | None:
    """The command's status, its row locked until the transaction ends."""
    return await conn.fetchval(
        "SELECT status FROM remediation.commands WHERE command_id = $1 FOR UPDATE", command_id
    )


async def get_command(conn: asyncpg.Connection, command_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_COMMAND, command_id)


async def claim(
    conn: asyncpg.Connection,
    command_id: str,
    now: datetime,
    lease: timedelta = timedelta(minutes=5),
) -> asyncpg.Record | None:
    """Take the command for one executor for `lease`; None when another holds it."""
    return await conn.fetchrow(CLAIM, command_id, now + lease, now)


async def release(conn: asyncpg.Connection, command_id: str) -> None:
    await conn.execute(RELEASE, command_id)


async def claim_until(conn: asyncpg.Connection, command_id: str, until: datetime) -> None:
    await conn.execute(
        "UPDATE remediation.commands SET claimed_until = $2 WHERE command_id = $1",
        command_id,
        until,
    )


async def set_status(
    conn: asyncpg.Connection,
    command_id: str,
    status: str,
    result: Any,
    *,
    executed_at: datetime | None = None,
    undo: Any = None,
) -> None:
    await conn.execute(
        SET_STATUS,
        command_id,
        status,
        _json(result),
        executed_at is not None,
        executed_at,
        _json(undo),
    )


async def executed_since(conn: asyncpg.Connection, account_id: str | None, since: datetime) -> int:
    return await conn.fetchval(EXECUTED_IN_WINDOW, account_id, since)


async def due_commands(conn: asyncpg.Connection, now: datetime, limit: int = 100) -> list[str]:
    return [r["command_id"] for r in await conn.fetch(DUE_COMMANDS, now, limit)]


async def audit_events(conn: asyncpg.Connection, command_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM remediation.audit_log WHERE command_id = $1 ORDER BY audit_id", command_id
    )


async def decide(
    conn: asyncpg.Connection,
    command_id: str,
    approve: bool,
    *,
    actor: str,
    reason: str | None = None,
) -> tuple[bool, str]:
    """Approve or reject a pending command (through the CLI); returns (changed, message)."""
    async with conn.transaction():
        status = "approved" if approve else "rejected"
        row = await conn.fetchrow(DECIDE, command_id, status, actor, reason)
        if row is None:
            current = await conn.fetchrow(
                "SELECT status, expires_at FROM remediation.commands WHERE command_id = $1",
                command_id,
            )
            if current is None:
                return False, f"no command {command_id}"
            if current["status"] == "pending-approval":
                await conn.execute(
                    "UPDATE remediation.commands SET status = 'expired', updated_at = now(), "
                    "result = $2 WHERE command_id = $1",
                    command_id,
                    _json({"outcome": "expired", "detail": "approval window closed"}),
                )
                await append_audit(
                    conn,
                    command_id,
                    "expired",
                    actor=actor,
                    reason="approval arrived after expires_at",
                )
                return (
                    False,
                    f"command {command_id} expired at {current['expires_at']:%Y-%m-%d %H:%M}Z",
                )
            return False, f"command {command_id} is {current['status']}, not pending approval"
        await append_audit(conn, command_id, status, actor=actor, reason=reason)
        return True, f"command {command_id} {status}"


async def require_approval(
    conn: asyncpg.Connection, command_id: str, *, actor: str, reason: str
) -> bool:
    """Send a ready command back to wait for a person (its playbook requires approval now)."""
    row = await conn.fetchrow(
        "UPDATE remediation.commands SET status = 'pending-approval', updated_at = now() "
        "WHERE command_id = $1 AND status = 'approved' AND decided_by IS NULL RETURNING command_id",
        command_id,
    )
    if row is not None:
        await append_audit(conn, command_id, "approval-required", actor=actor, reason=reason)
    return row is not None


async def request_undo(
    conn: asyncpg.Connection, command_id: str, *, actor: str, reason: str | None = None
) -> tuple[bool, str]:
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT status, undo, undo_requested_at, mode FROM remediation.commands "
            "WHERE command_id = $1 FOR UPDATE",
            command_id,
        )
        if row is None:
            return False, f"no command {command_id}"
        if row["status"] != "executed" or row["mode"] != "execute":
            return (
                False,
                f"command {command_id} is {row['status']} ({row['mode']}): nothing to undo",
            )
        if not row["undo"]:
            return False, f"command {command_id}: its action cannot be undone"
        if row["undo_requested_at"] is not None:
            return False, f"command {command_id}: undo already requested"
        await conn.execute(
            "UPDATE remediation.commands SET undo_requested_at = now(), updated_at = now() "
            "WHERE command_id = $1",
            command_id,
        )
        await append_audit(conn, command_id, "undo-requested", actor=actor, reason=reason)
        return True, f"undo of {command_id} requested"


async def mark_undone(conn: asyncpg.Connection, command_id: str, result: Any) -> None:
    await conn.execute(
        "UPDATE remediation.commands SET undone_at = now(), updated_at = now(), "
        "result = COALESCE(result, '{}'::jsonb) || jsonb_build_object('undo', $2::jsonb) "
        "WHERE command_id = $1",
        command_id,
        _json(result),
    )


# --- cost lines from priced-resources ----------------------------------------------------

COST_LINE_COLUMNS = (
    "record_id",
    "billing_scope",
    "billing_scope_version",
    "provider",
    "billing_account_id",
    "sub_account_id",
    "service_name",
    "region_id",
    "resource_id",
    "resource_type",
    "sku_id",
    "charge_description",
    "charge_category",
    "usage_date",
    "billed_cost",
    "currency",
    "consumed_quantity",
    "consumed_unit",
    "tags",
)

# Returns the scopes that are new or whose version moved up: only those can have superseded
# lines (the row is locked either way, so a restatement waits for a batch of the same scope
# in flight, and its delete then sees that batch's lines). In scope order: two instances lock
# the rows of the scopes they share in the same order.
UPSERT_SCOPES = """
INSERT INTO remediation.billing_scopes (billing_scope, version)
SELECT scope, max(version) FROM unnest($1::text[], $2::bigint[]) AS t(scope, version)
GROUP BY scope ORDER BY scope
ON CONFLICT (billing_scope) DO UPDATE SET version = EXCLUDED.version
    WHERE EXCLUDED.version > billing_scopes.version
RETURNING billing_scope"""

DROP_SUPERSEDED = """
DELETE FROM remediation.cost_lines l USING remediation.billing_scopes s
WHERE l.billing_scope = s.billing_scope AND l.billing_scope_version < s.version
  AND l.billing_scope = ANY($1::text[])"""

CREATE_INCOMING = """
CREATE TEMP TABLE IF NOT EXISTS incoming_lines (
    record_id text, billing_scope text, billing_scope_version bigint, provider text,
    billing_account_id text, sub_account_id text, service_name text, region_id text, resource_id text,
    resource_type text, sku_id text, charge_description text, charge_category text, usage_date date,
    billed_cost numeric, currency text, consumed_quantity numeric, consumed_unit text, tags text
) ON COMMIT DELETE ROWS"""

MERGE_LINES = f"""
INSERT INTO remediation.cost_lines ({", ".join(COST_LINE_COLUMNS)})
SELECT {", ".join("t." + c for c in COST_LINE_COLUMNS[:-1])}, t.tags::jsonb FROM pg_temp.incoming_lines t
LEFT JOIN remediation.billing_scopes s ON s.billing_scope = t.billing_scope
WHERE t.billing_scope IS NULL OR t.billing_scope_version >= s.version
ON CONFLICT (record_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in COST_LINE_COLUMNS if c != "record_id")}"""


async def store_cost_lines(conn: asyncpg.Connection, rows: list[tuple]) -> int:
    """Upsert resource cost lines (idempotent by record id); restated scopes replace older rows."""
    if not rows:
        return 0
    scopes = {(r[1], r[2] or 0) for r in rows if r[1] is not None}
    if scopes:
        bumped = await conn.fetch(UPSERT_SCOPES, [s for s, _ in scopes], [v for _, v in scopes])
        # only where a version moved up: deleting for every scope of every batch scanned the
        # whole table each time (5.5 s a batch at 2.4M lines, the 5M-row memory run)
        if bumped:
            await conn.execute(DROP_SUPERSEDED, [r["billing_scope"] for r in bumped])
    await conn.execute(CREATE_INCOMING)
    # one row per record id in a batch (a redelivered record may appear twice); binary COPY
    # has no jsonb encoder, so tags travel as text and are cast in the merge
    unique = [(*r[:-1], json.dumps(r[-1] or {})) for r in {r[0]: r for r in rows}.values()]
    await conn.copy_records_to_table(
        "incoming_lines", records=unique, columns=COST_LINE_COLUMNS, schema_name="pg_temp"
    )
    status = await conn.execute(MERGE_LINES)
    return int(status.split()[-1])


RESOURCES_OF_DIMENSION = """
SELECT provider, sub_account_id, billing_account_id, region_id, resource_id,
       max(resource_type) AS resource_type, max(currency) AS currency,
       sum(cost) / GREATEST(count(DISTINCT usage_date), 1) AS daily_cost
FROM remediation.v_resource_daily_cost
WHERE usage_date >= $1 AND usage_date < $2
  AND ($3::text IS NULL OR provider = $3) AND ($4::text IS NULL OR sub_account_id = $4)
  AND ($5::text IS NULL OR billing_account_id = $5) AND ($6::text IS NULL OR service_name = $6)
  AND ($7::text IS NULL OR region_id = $7) AND ($8::text IS NULL OR resource_id = $8)
GROUP BY 1, 2, 3, 4, 5 ORDER BY daily_cost DESC LIMIT 50"""

TAGS_OF = """
SELECT DISTINCT ON (resource_id) resource_id, tags FROM remediation.cost_lines
WHERE resource_id = ANY($1::text[]) ORDER BY resource_id, usage_date DESC"""


async def resources_of_dimension(
    conn: asyncpg.Connection, dimension: dict[str, str], start: date, end: date
) -> list[dict]:
    rows = await conn.fetch(
        RESOURCES_OF_DIMENSION,
        start,
        end,
        dimension.get("ProviderName"),
        dimension.get("SubAccountId"),
        dimension.get("BillingAccountId"),
        dimension.get("ServiceName"),
        dimension.get("RegionId"),
        dimension.get("ResourceId"),
    )
    tags = {
        r["resource_id"]: r["tags"]
        for r in await conn.fetch(TAGS_OF, [r["resource_id"] for r in rows])
    }
    return [{**dict(r), "tags": tags.get(r["resource_id"]) or {}} for r in rows]


async def resource_daily_costs(
    conn: asyncpg.Connection, resource_id: str
) -> list[tuple[date, Decimal]]:
    rows = await conn.fetch(
        "SELECT usage_date, sum(cost) AS cost FROM remediation.v_resource_daily_cost "
        "WHERE resource_id = $1 GROUP BY usage_date ORDER BY usage_date",
        resource_id,
    )
    return [(r["usage_date"], r["cost"]) for r in rows]


# --- recommendations, utilisation, savings -----------------------------------------------

VISIBLE_LINES = """
FROM remediation.cost_lines l LEFT JOIN remediation.billing_scopes s ON s.billing_scope = l.billing_scope
WHERE (l.billing_scope IS NULL OR l.billing_scope_version = s.version)"""


async def data_through(conn: asyncpg.Connection) -> date | None:
    return await conn.fetchval(f"SELECT max(l.usage_date) {VISIBLE_LINES}")


async def resource_usage_rows(conn: asyncpg.Connection, since: date, through: date) -> dict:
    """Per resource: identity, daily cost, consumed quantity per unit, descriptive text, tags."""
    days = await conn.fetch(
        f"""SELECT l.resource_id, l.provider, coalesce(l.sub_account_id, l.billing_account_id) AS account_id,
                   max(l.region_id) AS region_id, max(l.service_name) AS service_name,
                   max(l.resource_type) AS resource_type, l.currency, l.usage_date, sum(l.billed_cost) AS cost,
                   string_agg(DISTINCT concat_ws(' ', l.sku_id, l.charge_description, l.resource_type), ' ') AS text
            {VISIBLE_LINES} AND l.usage_date BETWEEN $1 AND $2 AND l.charge_category = 'Usage'
            GROUP BY l.resource_id, l.provider, 3, l.currency, l.usage_date""",
        since,
        through,
    )
    quantities = await conn.fetch(
        f"""SELECT l.resource_id, l.consumed_unit, sum(l.consumed_quantity) AS quantity
            {VISIBLE_LINES} AND l.usage_date BETWEEN $1 AND $2 AND l.consumed_unit IS NOT NULL
            GROUP BY 1, 2""",
        since,
        through,
    )
    tags = await conn.fetch(
        f"""SELECT DISTINCT ON (l.resource_id) l.resource_id, l.tags {VISIBLE_LINES}
            AND l.usage_date BETWEEN $1 AND $2 ORDER BY l.resource_id, l.usage_date DESC""",
        since,
        through,
    )
    return {
        "days": days,
        "quantities": quantities,
        "tags": {r["resource_id"]: r["tags"] for r in tags},
    }


async def metrics_since(conn: asyncpg.Connection, since: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM remediation.resource_metrics WHERE metric_date >= $1 ORDER BY resource_id, metric_date",
        since,
    )


async def store_metrics(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    await conn.executemany(
        """INSERT INTO remediation.resource_metrics (resource_id, metric_date, cpu_avg_pct, cpu_max_pct,
               cpu_p995_pct, network_mb) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (resource_id, metric_date) DO UPDATE SET cpu_avg_pct = EXCLUDED.cpu_avg_pct,
               cpu_max_pct = EXCLUDED.cpu_max_pct, cpu_p995_pct = EXCLUDED.cpu_p995_pct,
               network_mb = EXCLUDED.network_mb, received_at = now()""",
        rows,
    )


UPSERT_RECOMMENDATION = """
INSERT INTO remediation.recommendations (recommendation_id, rec_type, provider, account_id, region,
    resource_id, resource_type, action, params, rationale, evidence, estimated_monthly_savings, currency,
    first_seen, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
ON CONFLICT (recommendation_id) DO UPDATE SET params = EXCLUDED.params, rationale = EXCLUDED.rationale,
    evidence = EXCLUDED.evidence, estimated_monthly_savings = EXCLUDED.estimated_monthly_savings,
    last_seen = EXCLUDED.last_seen,
    state = CASE WHEN recommendations.state = 'resolved' THEN 'open' ELSE recommendations.state END,
    published_at = CASE WHEN recommendations.state = 'resolved' THEN NULL ELSE recommendations.published_at END
RETURNING recommendation_id"""


async def save_recommendations(
    conn: asyncpg.Connection, recs: list[dict], now: datetime
) -> list[str]:
    """Upsert the current findings, resolve the open ones no longer found; returns ids to publish."""
    for r in recs:
        await conn.fetchrow(
            UPSERT_RECOMMENDATION,
            r["recommendation_id"],
            r["type"],
            r["provider"],
            r["account_id"],
            r["region"],
            r["resource_id"],
            r["resource_type"],
            r["action"],
            _json(r["params"]),
            r["rationale"],
            _json(r["evidence"]),
            r["estimated_monthly_savings"],
            r["currency"],
            now,
        )
    await conn.execute(
        "UPDATE remediation.recommendations SET state = 'resolved', state_reason = 'no longer found' "
        "WHERE state = 'open' AND NOT (recommendation_id = ANY($1::text[]))",
        [r["recommendation_id"] for r in recs],
    )
    rows = await conn.fetch(
        "SELECT recommendation_id FROM remediation.recommendations WHERE published_at IS NULL AND state = 'open'"
    )
    return [r["recommendation_id"] for r in rows]


async def mark_recommendations_published(conn: asyncpg.Connection, ids: list[str]) -> None:
    await conn.execute(
        "UPDATE remediation.recommendations SET published_at = now() WHERE recommendation_id = ANY($1::text[])",
        ids,
    )


async def set_recommendation_state(
    conn: asyncpg.Connection,
    rec_id: str,
    state: str,
    reason: str | None,
    until: datetime | None = None,
) -> bool:
    status = await conn.execute(
        "UPDATE remediation.recommendations SET state = $2, state_reason = $3, snoozed_until = $4 "
        "WHERE recommendation_id = $1",
        rec_id,
        state,
        reason,
        until,
    )
    return status.endswith(" 1")


EXECUTED_FOR_SAVINGS = """
SELECT command_id, resource_id, executed_at, expected_monthly_savings, currency
FROM remediation.commands
WHERE status = 'executed' AND mode = 'execute' AND undone_at IS NULL AND action <> 'notify'
  AND result->>'outcome' IN ('done', 'already-satisfied')"""


async def executed_for_savings(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(EXECUTED_FOR_SAVINGS)


async def record_analysis(
    conn: asyncpg.Connection,
    started_at: datetime,
    instance: str,
    recommendations: int,
    published: int,
    savings: int,
) -> None:
    """Which instance analysed, and what came of it; runs older than 30 days go."""
    await conn.execute(
        "DELETE FROM remediation.analysis_runs WHERE started_at < now() - interval '30 days'"
    )
    await conn.execute(
        """INSERT INTO remediation.analysis_runs
               (started_at, instance, recommendations, published, savings)
           VALUES ($1, $2, $3, $4, $5)""",
        started_at,
        instance,
        recommendations,
        published,
        savings,
    )


async def save_savings(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    await conn.executemany(
        """INSERT INTO remediation.savings (command_id, baseline_daily, after_daily, days_before, days_after,
               expected_monthly, realised_monthly, currency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (command_id) DO UPDATE SET computed_at = now(), baseline_daily = EXCLUDED.baseline_daily,
               after_daily = EXCLUDED.after_daily, days_before = EXCLUDED.days_before,
               days_after = EXCLUDED.days_after, expected_monthly = EXCLUDED.expected_monthly,
               realised_monthly = EXCLUDED.realised_monthly, currency = EXCLUDED.currency""",
        rows,
    )


async def insert_commands(
    conn: asyncpg.Connection, planned: list[tuple[RemediationCommandV1, str]]
) -> list[RemediationCommandV1]:
    return [
        cmd for cmd, status in planned if await insert_command(conn, cmd, status, actor="planner")
    ]


# -- playbook switches (migration 0004): changed only by PlaybookCommand v1, audited ----------


async def playbook_switches(conn: asyncpg.Connection) -> dict[str, bool]:
    rows = await conn.fetch("SELECT name, enabled FROM remediation.playbook_switches")
    return {r["name"]: r["enabled"] for r in rows}


async def sync_playbook_catalog(
    conn: asyncpg.Connection, rows: list[tuple[str, str, bool, str, list[str]]]
) -> None:
    """Replace the catalog of loaded playbooks (name, mode, file's enabled, trigger, actions)."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM remediation.playbook_catalog WHERE NOT (name = ANY($1::text[]))",
            [r[0] for r in rows],
        )
        await conn.executemany(
            """INSERT INTO remediation.playbook_catalog (name, mode, file_enabled, trigger, actions)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (name) DO UPDATE SET mode = EXCLUDED.mode, file_enabled = EXCLUDED.file_enabled,
                   trigger = EXCLUDED.trigger, actions = EXCLUDED.actions, seen_at = now()""",
            rows,
        )


async def playbook_audited(conn: asyncpg.Connection, command_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM remediation.playbook_audit WHERE command_id = $1)",
            command_id,
        )
    )


async def switch_playbook(
    conn: asyncpg.Connection, name: str, enabled: bool, reason: str | None, actor: str
) -> None:
    await conn.execute(
        """INSERT INTO remediation.playbook_switches (name, enabled, reason, updated_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (name) DO UPDATE SET enabled = EXCLUDED.enabled, reason = EXCLUDED.reason,
               updated_at = now(), updated_by = EXCLUDED.updated_by""",
        name,
        enabled,
        reason,
        actor,
    )


async def audit_playbook(
    conn: asyncpg.Connection,
    command_id: str,
    name: str,
    action: str,
    outcome: str,
    detail: str | None,
    reason: str | None,
    actor: str,
    issued_at: datetime | None,
) -> None:
    await conn.execute(
        """INSERT INTO remediation.playbook_audit (command_id, name, action, outcome, detail, reason, actor, issued_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (command_id) DO NOTHING""",
        command_id,
        name,
        action,
        outcome,
        detail,
        reason,
        actor,
        issued_at,
    )
