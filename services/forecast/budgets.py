"""Budget watching: each budget's series is forecast with the others; after every refit the
period's actual and projected spend are compared with its thresholds, and each threshold
crossed in a period becomes one AnomalyV1 (`detector="budget"`) on `anomalies`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from finfocus.broker import Envelope
from finfocus.service import ServiceRuntime
from finfocus.signing import SigningKeys, service_keys, sign, verify
from finfocus.telemetry import trace_headers
from schemas.anomaly import AnomalyV1
from schemas.budget import BudgetCommandV1
from schemas.topics import Topics, schema_headers
from services.forecast.domain import DailySeries, Projection, build_series, trained_through
from services.forecast.domain_budgets import BudgetBreached, breaches
from services.forecast.store import BudgetStore, budget_series_key

logger = logging.getLogger(__name__)

#: forecast signs the budget breaches it publishes on `anomalies` as this issuer
ISSUER = "forecast"
#: who may change budgets: people, through the command line (or the API)
BUDGET_ISSUERS = ("cli", "api")
_KEYS: dict = {}


def keys_for(home) -> SigningKeys:
    """The forecast service's signing keys (its own and the command line's)."""
    if home not in _KEYS:
        _KEYS[home] = service_keys(home, (ISSUER, "cli"))
    return _KEYS[home]


def budget_command_decoder(
    keys: Callable[[], SigningKeys],
) -> Callable[[Envelope], tuple[BudgetCommandV1, str]]:
    """Decodes a `budget-commands` record to (command, actor): only a command signed by a
    trusted issuer is one; anything else raises (the pipeline dead-letters it with the reason)
    and changes nothing."""

    def decode(env: Envelope) -> tuple[BudgetCommandV1, str]:
        issuer = verify(keys(), env.headers, env.topic, env.value, BUDGET_ISSUERS)
        command = BudgetCommandV1.model_validate_json(env.value)
        # the person the signing issuer (the api) authenticated, when it names one
        return command, f"{issuer}:{command.actor}" if command.actor else issuer

    return decode


def to_anomaly(breach: BudgetBreached, now: datetime) -> AnomalyV1:
    """The contract form of a crossed budget threshold."""
    impact = breach.spend - breach.budget.amount
    return AnomalyV1(
        anomaly_id=breach.alert_id,
        detected_at=now,
        window_start=datetime.combine(breach.period_start, time(), UTC),
        window_end=datetime.combine(breach.period_end, time(), UTC),
        dimension=breach.dimension(),
        expected_cost=breach.budget.amount,
        actual_cost=breach.spend,
        impact=impact,
        impact_pct=(impact / breach.budget.amount * 100).quantize(Decimal("0.01")),
        currency=breach.budget.currency,
        severity=breach.severity(),
        score=float(breach.ratio),
        detector="budget",
        root_causes=[],
        status="open",
        monitor=f"budget:{breach.budget.name}:{breach.kind}:{breach.percent_text}",
    )


class BudgetWatcher:
    """Evaluates every budget against its period's actual and forecast spend."""

    def __init__(
        self, runtime: ServiceRuntime, store: BudgetStore, today: Callable[[], date] | None = None
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.today = today or (lambda: datetime.now(UTC).date())

    async def series(self, through: date) -> list[DailySeries]:
        """One series per budget scope, forecast alongside the dimension series."""
        out: list[DailySeries] = []
        for budget in await self.store.budgets():
            out.extend(build_series(await self.store.day_costs(budget, through), through))
        return out

    async def evaluate(self, *_args) -> int:
        """Evaluate every budget; returns the number of alerts raised now."""
        through = trained_through(await self.store.forecasts.last_day(), self.today())
        if through is None:
            return 0
        raised: list[BudgetBreached] = []
        for budget in await self.store.budgets():
            start, end = budget.bounds(through)
            actual = await self.store.forecasts.actual_between(
                budget.scope, budget.currency, start, min(end, through + timedelta(days=1))
            )
            rem = lo = hi = Decimal(0)
            for day, mean, lo95, hi95 in await self.store.points(
                budget_series_key(budget).as_text()
            ):
                if through < day < end:
                    rem, lo, hi = rem + mean, lo + lo95, hi + hi95
            projection = Projection(start, end, actual, rem, actual + rem, actual + lo, actual + hi)
            await self.store.save_status(budget.name, projection, through)
            raised.extend(breaches(budget, projection))
        if not raised:
            return 0
        already = await self.store.raised([b.alert_id for b in raised])
        new = [b for b in raised if b.alert_id not in already]
        if new:
            await self._publish(new)
            # recorded after publishing: a crash in between republishes the same anomaly_id
            await self.store.record_alerts(new)
        return len(new)

    async def _publish(self, found: list[BudgetBreached]) -> None:
        now = datetime.now(UTC)
        base = [(k, v.encode()) for k, v in schema_headers("Anomaly").items()]
        records = []
        for breach in found:
            with self.runtime.tracer.start_as_current_span(
                "forecast.budget_breached",
                attributes={"budget": breach.budget.name, "kind": breach.kind},
            ) as span:
                anomaly = to_anomaly(breach, now)
                records.append(
                    (
                        f"budget:{breach.budget.name}".encode(),
                        anomaly.model_dump_json().encode(),
                        base + trace_headers(span),
                    )
                )
            logger.info(
                "budget threshold crossed",
                extra={
                    "fields": {
                        "budget": breach.budget.name,
                        "kind": breach.kind,
                        "percent": str(breach.percent),
                        "spend": str(breach.spend),
                    }
                },
            )
        keys = keys_for(self.runtime.settings.home)
        signed = [(k, v, [*h, sign(keys, ISSUER, Topics.ANOMALIES, v)]) for k, v, h in records]
        await self.runtime.publisher.publish(Topics.ANOMALIES, signed)
