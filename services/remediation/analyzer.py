"""Background analysis: recommendations from stored billing data and utilisation, and the
realised savings of executed actions. Runs in the service when new data has arrived.

It reads every resource, whichever instance stored its rows, so with several instances only
the leader (finfocus/leader.py) analyses; the others forward what they stored to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from finfocus.leader import Leader, instance_id
from finfocus.service import ServiceRuntime
from finfocus.telemetry import log_fields
from schemas.remediation import RecommendationV1, RemediationTargetV1
from schemas.topics import Topics, schema_headers
from services.remediation import store
from services.remediation.analysis import (
    LOOKBACK_DAYS,
    Catalog,
    MetricDay,
    ResourceUsage,
    billing_rules,
    realised_savings,
    utilisation_rules,
)
from services.remediation.config import RemediationSettings
from services.remediation.domain import initial_status, plan_recommendation

logger = logging.getLogger(__name__)


#: the analysis reads every resource's recent days: during a large import it would run
#: back to back on data still arriving, so it takes at most this share of the time
ANALYSIS_SHARE = 0.25
MAX_PAUSE_S = 300.0


def pause_after(took: float, interval: float) -> float:
    """Seconds to wait after an analysis that took `took` seconds: the interval, or longer
    when the analysis itself is long (2.4M lines: several seconds each, every 15 s)."""
    return max(interval, min(MAX_PAUSE_S, took / ANALYSIS_SHARE - took))


def usages_from_rows(data: dict) -> list[ResourceUsage]:
    usages: dict[str, ResourceUsage] = {}
    for r in data["days"]:
        u = usages.get(r["resource_id"])
        if u is None:
            u = usages[r["resource_id"]] = ResourceUsage(
                r["resource_id"],
                r["provider"],
                r["account_id"],
                r["region_id"],
                r["service_name"],
                r["resource_type"],
                r["currency"],
                tags=data["tags"].get(r["resource_id"]) or {},
            )
        u.daily_cost[r["usage_date"]] = u.daily_cost.get(r["usage_date"], Decimal(0)) + r["cost"]
        u.text = f"{u.text} {r['text'] or ''}".strip()
    for q in data["quantities"]:
        if q["resource_id"] in usages and q["quantity"] is not None:
            usages[q["resource_id"]].quantities[q["consumed_unit"]] = q["quantity"]
    return list(usages.values())


def to_contract(rec, now: datetime) -> RecommendationV1:
    u = rec.resource
    return RecommendationV1(
        recommendation_id=rec.recommendation_id,
        type=rec.type,
        detected_at=now,
        target=RemediationTargetV1(
            provider=u.provider,
            account_id=u.account_id,
            region=u.region,
            resource_id=u.resource_id,
            resource_type=u.kind,
        ),
        action=rec.action,
        params=rec.params,
        rationale=rec.rationale,
        evidence=rec.evidence,
        estimated_monthly_savings=rec.estimated_monthly_savings,
        currency=rec.currency,
    )


class Analyzer:
    def __init__(
        self,
        runtime: ServiceRuntime,
        settings: RemediationSettings,
        playbooks,
        publish_commands,
        *,
        leader: Leader | None = None,
    ) -> None:
        self.runtime = runtime
        self.leader = leader
        self.instance = leader.instance if leader is not None else instance_id()
        self.settings = settings
        self.playbooks = playbooks
        self.publish_commands = publish_commands
        self.catalog = Catalog.load(settings.remediation_price_catalog)
        self.dirty = True

    def touch(self, *_: object) -> None:
        """New data here: the next round analyses, on this instance or on the leader."""
        if self._follower():
            self.leader.nudge()  # type: ignore[union-attr]
        else:
            self.dirty = True

    def due(self) -> None:
        """This instance analyses at its next round (it was elected, or a follower forwarded)."""
        self.dirty = True

    def _follower(self) -> bool:
        return self.leader is not None and not self.leader.leading

    async def run_once(self) -> dict:
        self.dirty = False
        now = datetime.now(UTC)
        pool = self.runtime.pool
        async with pool.acquire() as conn:
            through = await store.data_through(conn)
            if through is None:
                return {"recommendations": 0}
            since = through - timedelta(days=LOOKBACK_DAYS - 1)
            usages = usages_from_rows(await store.resource_usage_rows(conn, since, through))
            metrics: dict[str, list[MetricDay]] = {}
            for m in await store.metrics_since(conn, since):
                metrics.setdefault(m["resource_id"], []).append(
                    MetricDay(
                        m["metric_date"],
                        m["cpu_avg_pct"],
                        m["cpu_p995_pct"],
                        m["cpu_max_pct"],
                        m["network_mb"],
                    )
                )
        recs = billing_rules(usages, self.catalog) + utilisation_rules(
            usages, metrics, self.catalog, through
        )
        contracts = {r.recommendation_id: to_contract(r, now) for r in recs}
        async with store.transaction(pool) as conn:
            to_publish = await store.save_recommendations(
                conn,
                [
                    {
                        **c.target.model_dump(),
                        "recommendation_id": c.recommendation_id,
                        "type": c.type,
                        "action": c.action,
                        "params": c.params,
                        "rationale": c.rationale,
                        "evidence": c.evidence,
                        "estimated_monthly_savings": c.estimated_monthly_savings,
                        "currency": c.currency,
                        "account_id": c.target.account_id,
                        "region": c.target.region,
                    }
                    for c in contracts.values()
                ],
                now,
            )
        fresh = [contracts[i] for i in to_publish if i in contracts]
        if fresh:
            headers = [(k, v.encode()) for k, v in schema_headers("Recommendation").items()]
            await self.runtime.publisher.publish(
                Topics.RECOMMENDATIONS,
                [
                    (c.target.resource_id.encode(), c.model_dump_json().encode(), headers)
                    for c in fresh
                ],
            )
            playbooks = self.playbooks()
            tags = {r.resource.resource_id: r.resource.tags for r in recs}
            planned = [
                cmd
                for c in fresh
                for cmd in plan_recommendation(
                    c, playbooks, tags.get(c.target.resource_id, {}), now
                )
            ]
            async with store.transaction(pool) as conn:
                await store.mark_recommendations_published(
                    conn, [c.recommendation_id for c in fresh]
                )
                new_commands = await store.insert_commands(
                    conn, [(c, initial_status(c)) for c in planned]
                )
            if new_commands:
                await self.publish_commands(new_commands)
        savings = await self.update_savings(through)
        async with pool.acquire() as conn:
            await store.record_analysis(conn, now, self.instance, len(recs), len(fresh), savings)
        logger.info(
            "analysis done",
            extra=log_fields(recommendations=len(recs), published=len(fresh), savings=savings),
        )
        return {"recommendations": len(recs), "published": len(fresh), "savings": savings}

    async def update_savings(self, through: date | None) -> int:
        pool = self.runtime.pool
        async with pool.acquire() as conn:
            executed = await store.executed_for_savings(conn)
            rows = []
            for c in executed:
                daily = dict(await store.resource_daily_costs(conn, c["resource_id"]))
                figure = realised_savings(daily, c["executed_at"].astimezone(UTC).date(), through)
                if figure is None:
                    continue
                rows.append(
                    (
                        c["command_id"],
                        figure.baseline_daily,
                        figure.after_daily,
                        figure.days_before,
                        figure.days_after,
                        c["expected_monthly_savings"],
                        figure.realised_monthly,
                        c["currency"],
                    )
                )
        if rows:
            async with store.transaction(pool) as conn:
                await store.save_savings(conn, rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Analyse whenever data arrived, at most every `remediation_analysis_seconds`; savings
        are refreshed at least every ten intervals (executions change them too)."""
        idle_rounds = 0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            took = 0.0
            try:
                if self._follower():
                    idle_rounds = 0  # the leader analyses; elected, `due()` marks the work
                elif self.dirty or idle_rounds >= 10:
                    idle_rounds = 0
                    started = loop.time()
                    await self.run_once()
                    took = loop.time() - started
                else:
                    idle_rounds += 1
            except Exception:
                logger.exception("analysis failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(),
                    timeout=pause_after(took, self.settings.remediation_analysis_seconds),
                )
