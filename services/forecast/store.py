"""The `forecast` schema: cost lines, daily aggregates, forecasts, projections, budgets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import asyncpg

from services.forecast.domain import (
    RECURRING,
    USAGE,
    Choice,
    CostLine,
    DayCost,
    Projection,
    SeriesForecast,
    SeriesKey,
    dims_id,
)

LINE_COLUMNS = (
    "record_id",
    "provider",
    "account",
    "service",
    "region",
    "resource",
    "type",
    "currency",
    "day",
    "cost",
    "recurring",
    "billing_scope",
    "scope_version",
    "tags",
)

CREATE_TMP_LINES = """
CREATE TEMP TABLE IF NOT EXISTS tmp_forecast_lines (
    record_id text, provider text, account text, service text, region text, resource text,
    type text, currency text, day date, cost numeric, recurring boolean, billing_scope text,
    scope_version bigint, tags text) ON COMMIT DELETE ROWS"""

# Returns the scopes that are new or whose version moved up: only those can have superseded
# lines. (A scope's row is locked either way, so a restatement waits for a batch of the same
# scope in flight and its delete then sees that batch's lines.)
BUMP_SCOPES = """
INSERT INTO forecast.scope_versions (billing_scope, version)
SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT (billing_scope) DO UPDATE SET version = EXCLUDED.version
    WHERE EXCLUDED.version > forecast.scope_versions.version
RETURNING billing_scope"""

SCOPE_VERSIONS = """
SELECT billing_scope, version FROM forecast.scope_versions WHERE billing_scope = ANY($1::text[])"""

DROP_SUPERSEDED = """
DELETE FROM forecast.cost_lines c USING forecast.scope_versions s
WHERE c.billing_scope = s.billing_scope AND s.billing_scope = ANY($1::text[])
  AND coalesce(c.scope_version, 0) < s.version"""

UPSERT_LINES = f"""
INSERT INTO forecast.cost_lines ({", ".join(LINE_COLUMNS)})
SELECT {", ".join(LINE_COLUMNS[:-1])}, tags::jsonb FROM tmp_forecast_lines
ON CONFLICT (record_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in LINE_COLUMNS[1:])}
WHERE ({", ".join(f"forecast.cost_lines.{c}" for c in LINE_COLUMNS[1:])})
    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in LINE_COLUMNS[1:])})"""

LAST_DAY = "SELECT max(day) FROM forecast.cost_lines WHERE cost IS NOT NULL"
TAG_KEYS = "SELECT DISTINCT jsonb_object_keys(tags) AS k FROM forecast.cost_lines"

UPSERT_SERIES = """
INSERT INTO forecast.series_forecasts
    (series_key, dims, grp, currency, model, trained_through, cv_error, fingerprint, fitted_at)
SELECT k, d, g::jsonb, c, m, t, e, f, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[],
            $7::numeric[], $8::text[]) AS u(k, d, g, c, m, t, e, f)
ON CONFLICT (series_key) DO UPDATE SET
    model = EXCLUDED.model, trained_through = EXCLUDED.trained_through,
    cv_error = EXCLUDED.cv_error, fingerprint = EXCLUDED.fingerprint, fitted_at = now()
RETURNING series_key, series_id"""

POINT_COLUMNS = ("series_id", "day", "mean", "lo_80", "hi_80", "lo_95", "hi_95")
PROJECTION_COLUMNS = (
    "series_id",
    "period_start",
    "period_end",
    "actual_to_date",
    "forecast_remainder",
    "projected",
    "lo_95",
    "hi_95",
)

COLUMN_OF = {
    "provider": "provider",
    "account": "account",
    "service": "service",
    "region": "region",
    "resource": "resource",
    "type": "type",
}


def dimension_exprs(dims: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """SQL expressions of a dimension set and the tag keys they take as parameters."""
    exprs, params = [], []
    for d in dims:
        if d.startswith("tag:"):
            params.append(d[4:])
            exprs.append(f"tags ->> ${len(params) + 1}")
        else:
            exprs.append(COLUMN_OF[d])
    return exprs, params


class ForecastStore:
    """All SQL of the forecast service."""

    def __init__(self, pool_source) -> None:
        # `pool_source` has a `.pool` (ServiceRuntime) that exists once the app started
        self._source = pool_source

    @property
    def pool(self) -> asyncpg.Pool:
        return self._source.pool

    async def save_lines(self, lines: list[CostLine]) -> int:
        """Store a batch: newest billing-scope version wins, a redelivered record changes
        nothing. Returns the number of rows inserted or changed."""
        if not lines:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.write_lines(conn, lines)

    async def write_lines(self, conn: asyncpg.Connection, lines: list[CostLine]) -> int:
        """`save_lines` inside the caller's transaction (the consume pipeline's)."""
        if not lines:
            return 0
        scopes: dict[str, int] = {}
        for line in lines:
            if line.billing_scope:
                v = line.scope_version or 0
                scopes[line.billing_scope] = max(scopes.get(line.billing_scope, v), v)
        current: dict[str, int] = {}
        if scopes:
            names = sorted(scopes)
            bumped = await conn.fetch(BUMP_SCOPES, names, [scopes[n] for n in names])
            current = {
                r["billing_scope"]: r["version"] for r in await conn.fetch(SCOPE_VERSIONS, names)
            }
            # only where a version moved up: deleting for every scope of every batch scanned
            # the whole table each time (2.3 s a batch at 2.4M lines, the 5M-row memory run)
            if bumped:
                await conn.execute(DROP_SUPERSEDED, [r["billing_scope"] for r in bumped])
        keep = [
            line
            for line in lines
            if not line.billing_scope or (line.scope_version or 0) >= current[line.billing_scope]
        ]
        # the last copy of a record id in a batch wins
        unique = {line.record_id: line for line in keep}
        await conn.execute(CREATE_TMP_LINES)
        await conn.copy_records_to_table(
            "tmp_forecast_lines",
            records=[_line_row(x) for x in unique.values()],
            columns=LINE_COLUMNS,
        )
        status = await conn.execute(UPSERT_LINES)
        return int(status.split()[-1])

    async def last_day(self) -> date | None:
        return await self.pool.fetchval(LAST_DAY)

    async def tag_keys(self) -> list[str]:
        return [r["k"] for r in await self.pool.fetch(TAG_KEYS)]

    async def day_costs(self, dims: tuple[str, ...], through: date) -> list[DayCost]:
        """Cost per (group, currency, day, kind) of one dimension set, up to `through`."""
        exprs, params = dimension_exprs(dims)
        select = "".join(f"{e} AS g{i}, " for i, e in enumerate(exprs))
        group = "".join(f"{e}, " for e in exprs)
        sql = (
            f"SELECT {select}currency, day, recurring, sum(cost) AS cost "
            f"FROM forecast.cost_lines WHERE cost IS NOT NULL AND day <= $1 "
            f"GROUP BY {group}currency, day, recurring"
        )
        rows = await self.pool.fetch(sql, through, *params)
        name = dims_id(dims)
        out = []
        for r in rows:
            group_values = tuple((d, r[f"g{i}"]) for i, d in enumerate(dims))
            key = SeriesKey(name, tuple(sorted(group_values)), r["currency"])
            out.append(DayCost(key, r["day"], RECURRING if r["recurring"] else USAGE, r["cost"]))
        return out

    async def fingerprints(self) -> dict[str, tuple[str, date]]:
        rows = await self.pool.fetch(
            "SELECT series_key, fingerprint, trained_through FROM forecast.series_forecasts"
        )
        return {r["series_key"]: (r["fingerprint"], r["trained_through"]) for r in rows}

    async def save_forecasts(
        self,
        forecasts: list[SeriesForecast],
        projections: dict[str, list[Projection]],
        *,
        live_keys: list[str],
        refit: tuple | None = None,
    ) -> None:
        """Replace the forecasts of the fitted series, drop series that no longer exist."""
        import json

        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM forecast.series_forecasts WHERE series_key <> ALL($1::text[])",
                live_keys,
            )
            if forecasts:
                rows = await conn.fetch(
                    UPSERT_SERIES,
                    [f.key.as_text() for f in forecasts],
                    [f.key.dims for f in forecasts],
                    [json.dumps(f.key.group_dict(), sort_keys=True) for f in forecasts],
                    [f.key.currency for f in forecasts],
                    [f.model for f in forecasts],
                    [f.trained_through for f in forecasts],
                    [f.cv_error for f in forecasts],
                    [f.fingerprint for f in forecasts],
                )
                ids = {r["series_key"]: r["series_id"] for r in rows}
                await conn.execute(
                    "DELETE FROM forecast.forecast_points WHERE series_id = ANY($1::bigint[])",
                    list(ids.values()),
                )
                await conn.execute(
                    "DELETE FROM forecast.projections WHERE series_id = ANY($1::bigint[])",
                    list(ids.values()),
                )
                points = [
                    (ids[f.key.as_text()], p.day, p.mean, p.lo_80, p.hi_80, p.lo_95, p.hi_95)
                    for f in forecasts
                    for p in f.points
                ]
                await conn.copy_records_to_table(
                    "forecast_points", schema_name="forecast", records=points, columns=POINT_COLUMNS
                )
                proj_rows = [
                    (
                        ids[key],
                        p.period_start,
                        p.period_end,
                        p.actual_to_date,
                        p.forecast_remainder,
                        p.projected,
                        p.lo_95,
                        p.hi_95,
                    )
                    for key, items in projections.items()
                    if key in ids
                    for p in items
                ]
                await conn.copy_records_to_table(
                    "projections",
                    schema_name="forecast",
                    records=proj_rows,
                    columns=PROJECTION_COLUMNS,
                )
            if refit is not None:
                await conn.execute(
                    "INSERT INTO forecast.refits (started_at, finished_at, series_total, series_fitted,"
                    " reason, instance) VALUES ($1, now(), $2, $3, $4, $5)",
                    *refit,
                )

    async def choices(self) -> dict[str, tuple[Choice, date]]:
        rows = await self.pool.fetch("SELECT * FROM forecast.model_choices")
        return {
            r["series_key"]: (
                Choice(r["model"], r["cv_error"], r["widen_80"], r["widen_95"]),
                r["selected_through"],
            )
            for r in rows
        }

    async def save_choices(self, made: list[tuple[str, Choice, date]]) -> None:
        await self.pool.executemany(
            "INSERT INTO forecast.model_choices AS m (series_key, model, cv_error, widen_80, widen_95,"
            " selected_through) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (series_key) DO UPDATE SET"
            " model = EXCLUDED.model, cv_error = EXCLUDED.cv_error, widen_80 = EXCLUDED.widen_80,"
            " widen_95 = EXCLUDED.widen_95, selected_through = EXCLUDED.selected_through, selected_at = now()",
            [(k, c.model, c.cv_error, c.widen_80, c.widen_95, d) for k, c, d in made],
        )

    async def actual_between(
        self, filters: dict[str, str], currency: str, start: date, end: date
    ) -> Decimal:
        """Actual spend of a scope over [start, end) in one currency."""
        where, params = (
            ["cost IS NOT NULL", "currency = $1", "day >= $2", "day < $3"],
            [currency, start, end],
        )
        for k, v in sorted(filters.items()):
            params.append(k[4:] if k.startswith("tag:") else v)
            if k.startswith("tag:"):
                params.append(v)
                where.append(f"tags ->> ${len(params) - 1} = ${len(params)}")
            else:
                where.append(f"{COLUMN_OF[k]} = ${len(params)}")
        sql = f"SELECT coalesce(sum(cost), 0) FROM forecast.cost_lines WHERE {' AND '.join(where)}"
        return await self.pool.fetchval(sql, *params)


def _line_row(line: CostLine) -> tuple:
    import json

    return (
        line.record_id,
        line.provider,
        line.account,
        line.service,
        line.region,
        line.resource,
        line.type,
        line.currency,
        line.day,
        line.cost,
        _recurring(line),
        line.billing_scope,
        line.scope_version,
        json.dumps(line.tags or {}, sort_keys=True),
    )


def _recurring(line: CostLine) -> bool:
    from services.forecast.domain import is_recurring

    return is_recurring(line.charge_frequency)


# --- budgets --------------------------------------------------------------------------

APPLY_BUDGET = """
INSERT INTO forecast.budgets AS b (name, amount, currency, period, scope, thresholds, deleted, issued_at)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8)
ON CONFLICT (name) DO UPDATE SET
    amount = EXCLUDED.amount, currency = EXCLUDED.currency, period = EXCLUDED.period,
    scope = EXCLUDED.scope, thresholds = EXCLUDED.thresholds, deleted = EXCLUDED.deleted,
    issued_at = EXCLUDED.issued_at, updated_at = now()
WHERE b.issued_at <= EXCLUDED.issued_at"""

AUDIT_BUDGET = """
INSERT INTO forecast.budget_audit (name, action, actor, changed, command) VALUES ($1, $2, $3, $4, $5::text::jsonb)"""

SAVE_STATUS = """
INSERT INTO forecast.budget_status AS s (name, period_start, period_end, trained_through,
    actual_to_date, forecast_remainder, projected, lo_95, hi_95, evaluated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
ON CONFLICT (name) DO UPDATE SET
    period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
    trained_through = EXCLUDED.trained_through, actual_to_date = EXCLUDED.actual_to_date,
    forecast_remainder = EXCLUDED.forecast_remainder, projected = EXCLUDED.projected,
    lo_95 = EXCLUDED.lo_95, hi_95 = EXCLUDED.hi_95, evaluated_at = now()"""


class BudgetStore:
    """Budget SQL, beside `ForecastStore` in the same schema."""

    def __init__(self, forecasts: ForecastStore) -> None:
        self.forecasts = forecasts

    @property
    def pool(self) -> asyncpg.Pool:
        return self.forecasts.pool

    async def apply(
        self, cmd, conn: asyncpg.Connection | None = None, *, actor: str | None = None
    ) -> bool:
        """Apply a set/delete command unless a newer one already did; True when it changed.
        `conn`: the caller's transaction (the consume pipeline's); `actor`: the verified issuer,
        audited in `forecast.budget_audit` in the same transaction."""
        import json

        thresholds = [{"kind": t.kind.value, "percent": str(t.percent)} for t in cmd.thresholds]
        db = conn or self.pool
        status = await db.execute(
            APPLY_BUDGET,
            cmd.name,
            cmd.amount,
            cmd.currency,
            cmd.period.value,
            json.dumps(cmd.scope, sort_keys=True),
            json.dumps(thresholds),
            cmd.action == "delete",
            cmd.issued_at,
        )
        changed = status.split()[-1] != "0"
        if actor is not None:
            await db.execute(
                AUDIT_BUDGET, cmd.name, cmd.action, actor, changed, cmd.model_dump_json()
            )
        return changed

    async def budgets(self):
        from services.forecast.domain_budgets import DEFAULT_THRESHOLDS, Budget

        rows = await self.pool.fetch(
            "SELECT name, amount, currency, period, scope, thresholds FROM forecast.budgets"
            " WHERE NOT deleted ORDER BY name"
        )
        return [
            Budget(
                r["name"],
                r["amount"],
                r["currency"],
                r["period"],
                dict(r["scope"]),
                tuple((t["kind"], Decimal(t["percent"])) for t in r["thresholds"])
                or DEFAULT_THRESHOLDS,
            )
            for r in rows
        ]

    async def day_costs(self, budget, through: date) -> list[DayCost]:
        """Daily cost of a budget's scope in its currency: the series its forecast is fitted on."""
        where, params = (
            ["cost IS NOT NULL", "currency = $1", "day <= $2"],
            [budget.currency, through],
        )
        for k, v in sorted(budget.scope.items()):
            if k.startswith("tag:"):
                params += [k[4:], v]
                where.append(f"tags ->> ${len(params) - 1} = ${len(params)}")
            else:
                params.append(v)
                where.append(f"{COLUMN_OF[k]} = ${len(params)}")
        rows = await self.pool.fetch(
            f"SELECT day, recurring, sum(cost) AS cost FROM forecast.cost_lines WHERE {' AND '.join(where)}"
            " GROUP BY day, recurring",
            *params,
        )
        key = budget_series_key(budget)
        return [
            DayCost(key, r["day"], RECURRING if r["recurring"] else USAGE, r["cost"]) for r in rows
        ]

    async def points(self, series_key: str) -> list[tuple[date, Decimal, Decimal, Decimal]]:
        rows = await self.pool.fetch(
            "SELECT p.day, p.mean, p.lo_95, p.hi_95 FROM forecast.forecast_points p"
            " JOIN forecast.series_forecasts f USING (series_id) WHERE f.series_key = $1 ORDER BY p.day",
            series_key,
        )
        return [(r["day"], r["mean"], r["lo_95"], r["hi_95"]) for r in rows]

    async def save_status(self, name: str, p: Projection, through: date) -> None:
        await self.pool.execute(
            SAVE_STATUS,
            name,
            p.period_start,
            p.period_end,
            through,
            p.actual_to_date,
            p.forecast_remainder,
            p.projected,
            p.lo_95,
            p.hi_95,
        )

    async def raised(self, alert_ids: list[str]) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT alert_id FROM forecast.budget_alerts WHERE alert_id = ANY($1::text[])",
            alert_ids,
        )
        return {r["alert_id"] for r in rows}

    async def record_alerts(self, found) -> None:
        await self.pool.executemany(
            "INSERT INTO forecast.budget_alerts (alert_id, name, period_start, period_end, kind,"
            " percent, limit_amount, spend) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (alert_id) DO NOTHING",
            [
                (
                    b.alert_id,
                    b.budget.name,
                    b.period_start,
                    b.period_end,
                    b.kind,
                    b.percent,
                    b.limit,
                    b.spend,
                )
                for b in found
            ],
        )


def budget_series_key(budget) -> SeriesKey:
    return SeriesKey(budget.series_dims(), tuple(sorted(budget.scope.items())), budget.currency)
