"""Reads of the remediation service's `v_recommendations` and `v_savings`: `finfocus
recommendations list` and `savings report`, the api's `recommendations` and `savings` and the
assistant's tools select and total the same rows here."""

from __future__ import annotations

from decimal import Decimal


async def recommendations(conn, state: str | None, rec_type: str | None) -> list[dict]:
    """Recommendations in `state` (None: all) of `rec_type` (None: all), largest saving first."""
    rows = await conn.fetch(
        "SELECT * FROM remediation.v_recommendations WHERE ($1::text IS NULL OR state = $1) "
        "AND ($2::text IS NULL OR type = $2) ORDER BY estimated_monthly_savings DESC, recommendation_id",
        state,
        rec_type,
    )
    return [dict(r) for r in rows]


def recommendation_totals(rows: list[dict]) -> list[dict]:
    """Estimated monthly savings per currency; the CLI and the api answer the same."""
    totals: dict[str, Decimal] = {}
    for r in rows:
        totals[r["currency"]] = totals.get(r["currency"], Decimal(0)) + (
            r["estimated_monthly_savings"] or 0
        )
    # snake_case like every event (docs/cli.md); the camelCase key is kept for one release
    return [
        {"currency": c, "estimated_monthly_savings": t, "estimatedMonthlySavings": t}
        for c, t in sorted(totals.items())
    ]


async def savings(conn) -> list[dict]:
    """Executed actions with their expected and realised monthly savings, oldest first."""
    return [
        dict(r)
        for r in await conn.fetch("SELECT * FROM remediation.v_savings ORDER BY executed_at")
    ]


SAVINGS_KEYS = {"playbook": "playbook", "account": "account_id", "action": "action"}


def savings_groups(rows: list[dict], by: list[str]) -> list[dict]:
    """Expected and realised monthly savings summed per group and currency (never across currencies)."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r[SAVINGS_KEYS[k]] for k in by) + (r["currency"],)
        g = groups.setdefault(
            key,
            {
                "group": {k: r[SAVINGS_KEYS[k]] for k in by},
                "currency": r["currency"],
                "actions": 0,
                "expected_monthly": Decimal(0),
                "realised_monthly": Decimal(0),
                "measured": 0,
            },
        )
        g["actions"] += 1
        g["expected_monthly"] += r["expected_monthly"] or Decimal(0)
        if r["realised_monthly"] is not None:
            g["realised_monthly"] += r["realised_monthly"]
            g["measured"] += 1
    out = [groups[k] for k in sorted(groups, key=lambda k: tuple(str(x) for x in k))]
    for g in out:  # snake_case like every event (docs/cli.md); camelCase kept for one release
        g["expectedMonthly"], g["realisedMonthly"] = g["expected_monthly"], g["realised_monthly"]
    return out


def savings_totals(rows: list[dict]) -> list[dict]:
    """Expected and realised monthly savings per currency; the CLI and the api answer the same."""
    return [
        {
            "currency": g["currency"],
            "expected_monthly": g["expected_monthly"],
            "realised_monthly": g["realised_monthly"],
            "expectedMonthly": g["expected_monthly"],
            "realisedMonthly": g["realised_monthly"],
        }
        for g in savings_groups(rows, [])
    ]
