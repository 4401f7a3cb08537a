"""The instance catalog: unit prices with effective dates, refreshed through the plugins.

A refresh asks every plugin for all the prices it knows (`GetPricingSpec` with an empty
descriptor) and records them: unchanged prices stay current, changed ones close and a new
row opens, so `pricing.v_catalog_prices` keeps the price history.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from schemas.currencies import is_iso_4217
from services.pricing.host import PluginHost
from services.pricing.store import record_prices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogPrice:
    source: str
    provider: str
    service: str
    sku: str
    region: str
    unit: str
    unit_price: Decimal
    currency: str
    description: str | None = None
    effective_from: datetime | None = None


def _when(text: str) -> datetime | None:
    if not text:
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    except ValueError:
        return None


def to_prices(plugin: str, specs) -> tuple[list[CatalogPrice], list[str]]:
    """Validated catalog rows from a plugin's specs, and the reasons for the ones refused."""
    out, refused = [], []
    for s in specs:
        try:
            price = Decimal(s.unit_price)
        except (InvalidOperation, TypeError):
            refused.append(f"{s.sku}: unit_price {s.unit_price!r} is not a decimal")
            continue
        currency = s.currency or "USD"
        if not price.is_finite() or price < 0 or not is_iso_4217(currency) or not s.sku:
            refused.append(f"{s.sku or '?'}: invalid price, currency or sku")
            continue
        out.append(
            CatalogPrice(
                f"plugin:{plugin}",
                s.provider,
                s.service,
                s.sku,
                s.region,
                s.unit,
                price,
                currency,
                s.description or None,
                _when(s.effective_date),
            )
        )
    return out, refused


async def refresh(host: PluginHost, conn, *, now: datetime | None = None) -> dict[str, dict]:
    """Refresh the catalog from every plugin; a failing plugin is reported, the rest recorded."""
    now = now or datetime.now(UTC)
    report: dict[str, dict] = {}
    for ref in host.plugins:
        specs = await host.pricing_specs(ref)
        prices, refused = to_prices(ref.name, specs)
        changed, unchanged = await record_prices(conn, prices, now) if prices else (0, 0)
        stats = host.report().get(ref.name, {})
        report[ref.name] = {
            "prices": len(prices),
            "changed": changed,
            "unchanged": unchanged,
            "refused": refused,
            "error": stats.get("last_error") if not specs else None,
        }
    return report


async def refresh_forever(host: PluginHost, pool, period: float, first_delay: float = 0.0) -> None:
    """The scheduled refresh of the pricing service (FINFOCUS_PRICING_CATALOG_REFRESH_S); the
    first one waits `first_delay` so it does not compete with start-up."""
    await asyncio.sleep(first_delay)
    while True:
        try:
            async with pool.acquire() as conn:
                report = await refresh(host, conn)
            logger.info(
                "catalog refreshed",
                extra={"fields": {"plugins": {k: v["prices"] for k, v in report.items()}}},
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed refresh is retried next period
            logger.exception("catalog refresh failed")
        await asyncio.sleep(period)
