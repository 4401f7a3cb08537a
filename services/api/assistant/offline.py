"""The offline engine: a plan (`understand`) becomes one SQL query over the views, and its rows
become a sentence. No model, no network.

Spend, top-N, comparisons, trends and unpriced counts by provider, service, account, region,
charge category, day or month read pricing's daily aggregate (`pricing.v_daily_costs`, a few
hundred rows a day) instead of the lines, when the caller found none of the question's days
waiting for a rebuild (`aggregate_ready`): its sums are the lines' sums (numeric addition), so
the answer is the same to the cent. Resource, SKU, type and tag questions, and any window with
a dirty day, read `pricing.v_cost_lines`.

Names from the data enter the SQL only as quoted literals, and the SQL still goes through
`safety.check` like any other engine's, so a rule slip here cannot become a write.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from services.api.assistant.dates import Period, month_start
from services.api.assistant.understand import Plan
from services.api.assistant.vocab import Vocabulary

COST = "pricing.v_cost_lines"
DIMENSIONS = {
    "service": "service_name",
    "account": "coalesce(sub_account_id, billing_account_id)",
    "region": "region_id",
    "resource": "resource_id",
    "provider": "provider",
    "sku": "sku_id",
    "type": "resource_type",
    "category": "charge_category",
    "day": "to_char(charge_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "month": "to_char(charge_period_start AT TIME ZONE 'UTC', 'YYYY-MM')",
}
AGGREGATE = "pricing.v_daily_costs"
#: the dimensions the daily aggregate keeps, as its own columns
AGGREGATE_DIMENSIONS = {
    "service": "service_name",
    "account": "coalesce(sub_account_id, billing_account_id)",
    "region": "region_id",
    "provider": "provider",
    "category": "charge_category",
    "day": "to_char(day, 'YYYY-MM-DD')",
    "month": "to_char(day, 'YYYY-MM')",
}
PLURAL = {"service": "services", "account": "accounts", "region": "regions", "resource": "resources",
          "provider": "providers", "sku": "SKUs", "type": "resource types", "category": "charge categories",
          "day": "days", "month": "months"}  # fmt: skip


def lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ts(d: date) -> str:
    return f"{lit(d.isoformat() + 'T00:00:00+00:00')}::timestamptz"


def _in(expr: str, values: list[str]) -> str:
    if len(values) == 1:
        return f"{expr} = {lit(values[0])}"
    return f"{expr} IN ({', '.join(lit(v) for v in values)})"


def dim_expr(dimension: str, agg: bool = False) -> str:
    if dimension.startswith("tag:"):
        return f"tags ->> {lit(dimension[4:])}"
    return (AGGREGATE_DIMENSIONS if agg else DIMENSIONS)[dimension]


def dim_name(dimension: str) -> str:
    return dimension[4:] if dimension.startswith("tag:") else dimension


def in_period(p: Period, column: str = "charge_period_start") -> str:
    return f"{column} >= {ts(p.start)} AND {column} < {ts(p.end)}"


def in_days(p: Period, agg: bool) -> str:
    """The period on the lines' start times, or on the aggregate's UTC days (the same rows:
    a period runs from one UTC midnight to another)."""
    if not agg:
        return in_period(p)
    return f"day >= {lit(p.start.isoformat())}::date AND day < {lit(p.end.isoformat())}::date"


def _unpriced_dim(plan: Plan) -> str:
    return plan.dimension if plan.dimension and plan.dimension in DIMENSIONS else "service"


def aggregate_allows(plan: Plan) -> bool:
    """True when the daily aggregate keeps every column `plan` reads (no resource or tag)."""
    if plan.intent not in _COST_BUILDERS or not plan.period:
        return False
    if plan.scope.resources or plan.scope.tags:
        return False
    dims = [_unpriced_dim(plan)] if plan.intent == "unpriced" else [plan.dimension, plan.grain]
    return all(d is None or d in AGGREGATE_DIMENSIONS for d in dims)


def windows(plan: Plan) -> list[Period]:
    """The periods `plan`'s query reads (a comparison reads two)."""
    return [p for p in (plan.period, plan.previous) if p is not None]


DIRTY_DAYS = "SELECT EXISTS (SELECT 1 FROM pricing.v_dirty_days WHERE {})"


async def aggregate_ready(conn, plan: Plan) -> bool:
    """True when the aggregate may answer `plan`: it keeps the plan's columns, and none of the
    days the plan reads waits for pricing's rebuild (a day with new, changed or deleted lines
    is marked until then). Without the aggregate's views (an older pricing schema, no grant),
    the lines answer."""
    import asyncpg

    if not aggregate_allows(plan):
        return False
    conds = " OR ".join(f"({in_days(p, True)})" for p in windows(plan))
    try:
        return not await conn.fetchval(DIRTY_DAYS.format(conds))
    except (
        asyncpg.UndefinedTableError,
        asyncpg.InvalidSchemaNameError,
        asyncpg.InsufficientPrivilegeError,
    ):
        return False


def scope_conditions(plan: Plan) -> list[str]:
    s = plan.scope
    out = []
    if s.providers:
        out.append(_in("provider", s.providers))
    if s.services:
        out.append(_in("service_name", s.services))
    if s.accounts:
        out.append(_in("coalesce(sub_account_id, billing_account_id)", s.accounts))
    if s.regions:
        out.append(_in("region_id", s.regions))
    if s.resources:
        out.append(_in("resource_id", s.resources))
    for key, values in s.tags.items():
        out.append(_in(f"tags ->> {lit(key)}", values))
    return out


def _where(conds: list[str]) -> str:
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def build_sql(plan: Plan, vocab: Vocabulary, today: date, *, aggregate: bool = False) -> str:
    """The one SELECT that answers `plan`; over the daily aggregate when `aggregate` (the
    caller's `aggregate_ready`) and the plan allows it."""
    agg = aggregate and aggregate_allows(plan)
    if plan.intent in _COST_BUILDERS:
        return _COST_BUILDERS[plan.intent](plan, vocab, today, agg)
    return _BUILDERS[plan.intent](plan, vocab, today)


def _from(agg: bool) -> str:
    return AGGREGATE if agg else COST


def _spend(plan: Plan, vocab: Vocabulary, today: date, agg: bool = False) -> str:
    assert plan.period
    conds = [in_days(plan.period, agg), *scope_conditions(plan)]
    return (
        f"SELECT billing_currency AS currency, sum(billed_cost) AS cost FROM {_from(agg)}"
        f"{_where(conds)} GROUP BY 1 ORDER BY 1"
    )


def _top(plan: Plan, vocab: Vocabulary, today: date, agg: bool = False) -> str:
    assert plan.period and plan.dimension
    conds = [in_days(plan.period, agg), *scope_conditions(plan)]
    order = "ASC" if plan.ascending else "DESC"
    limit = f" LIMIT {plan.limit}" if plan.limit else ""
    return (
        f"SELECT {dim_expr(plan.dimension, agg)} AS {ident(dim_name(plan.dimension))}, "
        f"billing_currency AS currency, sum(billed_cost) AS cost FROM {_from(agg)}{_where(conds)} "
        f"GROUP BY 1, 2 ORDER BY 3 {order} NULLS LAST, 1{limit}"
    )


def _compare(plan: Plan, vocab: Vocabulary, today: date, agg: bool = False) -> str:
    assert plan.period and plan.previous
    cur, prev = in_days(plan.period, agg), in_days(plan.previous, agg)
    conds = [f"(({cur}) OR ({prev}))", *scope_conditions(plan)]
    sums = (
        f"coalesce(sum(billed_cost) FILTER (WHERE {prev}), 0) AS previous_cost, "
        f"coalesce(sum(billed_cost) FILTER (WHERE {cur}), 0) AS current_cost"
    )
    derived = (
        "previous_cost, current_cost, current_cost - previous_cost AS change, "
        "round(100 * (current_cost - previous_cost) / nullif(previous_cost, 0), 1) AS change_pct"
    )
    if plan.dimension:
        name = ident(dim_name(plan.dimension))
        order = "ASC" if plan.ascending else "DESC"
        limit = f" LIMIT {plan.limit}" if plan.limit else ""
        return (
            f"WITH t AS (SELECT {dim_expr(plan.dimension, agg)} AS {name}, billing_currency AS currency, {sums} "
            f"FROM {_from(agg)}{_where(conds)} GROUP BY 1, 2) "
            f"SELECT {name}, currency, {derived} FROM t ORDER BY change {order}, 1{limit}"
        )
    return (
        f"WITH t AS (SELECT billing_currency AS currency, {sums} FROM {_from(agg)}{_where(conds)} GROUP BY 1) "
        f"SELECT currency, {derived} FROM t ORDER BY 1"
    )


def _trend(plan: Plan, vocab: Vocabulary, today: date, agg: bool = False) -> str:
    assert plan.period and plan.grain
    conds = [in_days(plan.period, agg), *scope_conditions(plan)]
    dim = (
        f"{dim_expr(plan.dimension, agg)} AS {ident(dim_name(plan.dimension))}, "
        if plan.dimension
        else ""
    )
    keys = "1, 2, 3" if plan.dimension else "1, 2"
    return (
        f"SELECT {dim_expr(plan.grain, agg)} AS {plan.grain}, {dim}billing_currency AS currency, "
        f"sum(billed_cost) AS cost FROM {_from(agg)}{_where(conds)} GROUP BY {keys} ORDER BY {keys}"
    )


_ANOMALY_DIMS = {
    "service": "ServiceName",
    "account": "SubAccountId",
    "provider": "ProviderName",
    "region": "RegionId",
}


def _anomaly_conditions(plan: Plan) -> list[str]:
    s = plan.scope
    conds = []
    for values, key in (
        (s.services, "ServiceName"),
        (s.accounts, "SubAccountId"),
        (s.providers, "ProviderName"),
        (s.regions, "RegionId"),
    ):
        if values:
            conds.append(_in(f"dimension ->> {lit(key)}", values))
    if plan.period:
        conds.append(in_period(plan.period, "window_start"))
    if plan.options.get("open"):
        conds.append("status IN ('open', 'ongoing')")
    if sev := plan.options.get("severity"):
        conds.append(f"severity = {lit(sev)}")
    return conds


def _anomalies(plan: Plan, vocab: Vocabulary, today: date) -> str:
    conds = _anomaly_conditions(plan)
    view = "anomaly.v_anomalies"
    if plan.options.get("count"):
        return (
            f"SELECT currency, count(*) AS anomalies, sum(impact) AS impact FROM {view}"
            f"{_where(conds)} GROUP BY 1 ORDER BY 1"
        )
    if plan.dimension in _ANOMALY_DIMS:
        key = _ANOMALY_DIMS[plan.dimension]
        limit = f" LIMIT {plan.limit}" if plan.limit else ""
        return (
            f"SELECT dimension ->> {lit(key)} AS {plan.dimension}, currency, count(*) AS anomalies, "
            f"sum(impact) AS impact FROM {view}{_where(conds)} GROUP BY 1, 2 ORDER BY 4 DESC, 1{limit}"
        )
    return (
        f"SELECT anomaly_id, dimension ->> 'ServiceName' AS service, "
        f"dimension ->> 'SubAccountId' AS account, "
        f"to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS window_start, "
        f"to_char(window_end AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS window_end, expected_cost, actual_cost, "
        f"impact, currency, severity, status FROM {view}{_where(conds)} "
        f"ORDER BY impact DESC, anomaly_id LIMIT {plan.limit or 20}"
    )


def forecast_dims(plan: Plan, vocab: Vocabulary) -> str:
    wanted = set()
    for name, values in (
        ("service", plan.scope.services),
        ("account", plan.scope.accounts),
        ("provider", plan.scope.providers),
        ("region", plan.scope.regions),
    ):
        if values:
            wanted.add(name)
    for key in plan.scope.tags:
        wanted.add(f"tag:{key}")
    candidates = [
        d
        for d in vocab.forecast_dims
        if not d.startswith("budget:") and wanted <= set(filter(None, d.split(",")))
    ]
    if not candidates:
        from services.api.assistant.understand import NotUnderstood

        raise NotUnderstood(
            "there is no forecast by " + (", ".join(sorted(wanted)) or "total") + " yet"
        )
    return min(candidates, key=lambda d: (d.count(",") + 1 if d else 0, d))


def _forecast_conditions(plan: Plan, dims: str) -> list[str]:
    conds = [f"dims = {lit(dims)}"]
    for name, values in (
        ("service", plan.scope.services),
        ("account", plan.scope.accounts),
        ("provider", plan.scope.providers),
        ("region", plan.scope.regions),
    ):
        if values:
            conds.append(_in(f'"group" ->> {lit(name)}', values))
    for key, values in plan.scope.tags.items():
        conds.append(_in(f'"group" ->> {lit("tag:" + key)}', values))
    return conds


def _forecast(plan: Plan, vocab: Vocabulary, today: date) -> str:
    dims = forecast_dims(plan, vocab)
    conds = _forecast_conditions(plan, dims)
    kind = plan.options.get("kind", "month-end")
    if kind == "month-end":
        start = month_start(today)
        conds.append(f"period_start = {lit(start.isoformat())}::date")
        return (
            "SELECT currency, sum(actual_to_date) AS actual_to_date, sum(projected) AS projected, "
            "sum(lo_95) AS lo_95, sum(hi_95) AS hi_95 FROM forecast.v_month_end"
            f"{_where(conds)} GROUP BY 1 ORDER BY 1"
        )
    if kind == "next-month":
        start, end = month_start(today, 1), month_start(today, 2)
    else:
        start, end = today, today + timedelta(days=int(plan.options.get("days", "7")))
    plan.period = Period(start, end, "")
    conds.append(f"day >= {lit(start.isoformat())}::date AND day < {lit(end.isoformat())}::date")
    return (
        "SELECT currency, sum(mean) AS forecast, sum(lo_95) AS lo_95, sum(hi_95) AS hi_95 "
        f"FROM forecast.v_forecasts{_where(conds)} GROUP BY 1 ORDER BY 1"
    )


def _budgets(plan: Plan, vocab: Vocabulary, today: date) -> str:
    cond = " WHERE projected > amount" if plan.options.get("at_risk") else ""
    return (
        "SELECT name, amount, currency, actual_to_date, projected, "
        "round(100 * projected / nullif(amount, 0), 1) AS projected_pct FROM forecast.v_budgets"
        f"{cond} ORDER BY projected / nullif(amount, 0) DESC NULLS LAST, name"
    )


def _recommendations(plan: Plan, vocab: Vocabulary, today: date) -> str:
    conds = ["state = 'open'"]
    if t := plan.options.get("type"):
        conds.append(f"type LIKE {lit(t + '%')}")
    if plan.scope.accounts:
        conds.append(_in("account_id", plan.scope.accounts))
    if plan.scope.providers:
        conds.append(_in("provider", plan.scope.providers))
    if plan.scope.resources:
        conds.append(_in("resource_id", plan.scope.resources))
    view = "remediation.v_recommendations"
    if plan.options.get("total"):
        return (
            f"SELECT currency, count(*) AS recommendations, sum(estimated_monthly_savings) AS monthly_savings "
            f"FROM {view}{_where(conds)} GROUP BY 1 ORDER BY 1"
        )
    return (
        f"SELECT recommendation_id, type, resource_id, action, estimated_monthly_savings, currency "
        f"FROM {view}{_where(conds)} ORDER BY estimated_monthly_savings DESC, recommendation_id "
        f"LIMIT {plan.limit or 20}"
    )


def _savings(plan: Plan, vocab: Vocabulary, today: date) -> str:
    conds = [in_period(plan.period, "executed_at")] if plan.period else []
    if plan.scope.accounts:
        conds.append(_in("account_id", plan.scope.accounts))
    sums = (
        "count(*) AS actions, sum(realised_monthly) AS realised_monthly, "
        "sum(expected_monthly) AS expected_monthly"
    )
    if plan.dimension in ("playbook", "action"):
        return (
            f"SELECT {plan.dimension}, currency, {sums} FROM remediation.v_savings{_where(conds)} "
            "GROUP BY 1, 2 ORDER BY 4 DESC NULLS LAST, 1"
        )
    return (
        f"SELECT currency, {sums} FROM remediation.v_savings{_where(conds)} GROUP BY 1 ORDER BY 1"
    )


def _unpriced(plan: Plan, vocab: Vocabulary, today: date, agg: bool = False) -> str:
    assert plan.period
    dim = _unpriced_dim(plan)
    if agg:  # the aggregate counts each group's unpriced lines: the groups with any
        conds = ["billed_nulls > 0", in_days(plan.period, agg), *scope_conditions(plan)]
        return (
            f"SELECT {dim_expr(dim, agg)} AS {ident(dim)}, sum(billed_nulls)::bigint AS lines "
            f"FROM {AGGREGATE}{_where(conds)} GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    conds = ["billed_cost IS NULL", in_period(plan.period), *scope_conditions(plan)]
    return (
        f"SELECT {dim_expr(dim)} AS {ident(dim)}, count(*) AS lines FROM {COST}{_where(conds)} "
        "GROUP BY 1 ORDER BY 2 DESC, 1"
    )


def _untagged(plan: Plan, vocab: Vocabulary, today: date) -> str:
    assert plan.period
    key = plan.options.get("tag_key")
    cond = f"NOT tags ? {lit(key)}" if key else "tags = '{}'::jsonb"
    conds = [in_period(plan.period), *scope_conditions(plan)]
    return (
        f"SELECT billing_currency AS currency, coalesce(sum(billed_cost) FILTER (WHERE {cond}), 0) AS untagged_cost, "
        f"count(*) FILTER (WHERE {cond}) AS untagged_lines, sum(billed_cost) AS total_cost, "
        f"round(100 * coalesce(sum(billed_cost) FILTER (WHERE {cond}), 0) / nullif(sum(billed_cost), 0), 1) AS untagged_pct "
        f"FROM {COST}{_where(conds)} GROUP BY 1 ORDER BY 1"
    )


#: the cost intents the aggregate can answer (given the plan's columns allow it)
_COST_BUILDERS = {
    "spend": _spend, "top": _top, "compare": _compare, "trend": _trend, "unpriced": _unpriced,
}  # fmt: skip
_BUILDERS = {
    "anomalies": _anomalies, "forecast": _forecast, "budgets": _budgets,
    "recommendations": _recommendations, "savings": _savings, "untagged": _untagged,
}  # fmt: skip


def money(value) -> str:
    if value is None:
        return "0.00"
    return format(Decimal(str(value)).quantize(Decimal("0.01")), ",f")
