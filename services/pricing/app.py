"""Wiring of the pricing service: `finfocus serve pricing` runs `build_app()`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.service import ServiceRuntime
from finfocus.signing import SigningKeys
from services.pricing.aggregate import refresh_forever as refresh_daily_costs
from services.pricing.batch import BatchPricer
from services.pricing.catalog import refresh_forever
from services.pricing.config import PricingSettings
from services.pricing.handlers import register_handlers
from services.pricing.host import PluginHost
from services.pricing.plugins import make_host
from services.pricing.recovery import recover_broker
from services.pricing.specs import SpecSource
from services.pricing.store import PricingStore, save_health

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
logger = logging.getLogger(__name__)


def build_app(
    settings: PricingSettings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    """The pricing service: raw-billing -> priced lines in `pricing` -> priced-resources."""
    settings = PricingSettings.extending(settings)
    runtime = ServiceRuntime(
        "pricing",
        settings,
        tracer_provider,
        description="Prices raw billing records (billed, plugins, YAML specs) and stores cost lines",
    )
    store = PricingStore(runtime)
    host = make_host(settings)
    pricer = BatchPricer(
        runtime.tracer,
        specs=SpecSource(settings.specs_dir),
        quotes=host.quotes if host.plugins else None,
        keys=SigningKeys(home=settings.home),  # verifies ingest's signature on billing scopes
    )
    register_handlers(runtime, store, pricer)
    tasks: list[asyncio.Task] = []

    async def start_background() -> None:
        tasks.append(
            asyncio.create_task(refresh_daily_costs(runtime.pool), name="pricing-daily-costs")
        )
        if settings.broker_epoch:
            tasks.append(
                asyncio.create_task(
                    _recover(store, runtime, settings), name="pricing-broker-recovery"
                )
            )
        # plugins start on first use (a stream of billed rows never needs them)
        if host.plugins:
            tasks.append(
                asyncio.create_task(_report_health(host, runtime), name="pricing-plugin-health")
            )
            if settings.pricing_catalog_refresh_s > 0:
                tasks.append(
                    asyncio.create_task(
                        refresh_forever(
                            host,
                            runtime.pool,
                            settings.pricing_catalog_refresh_s,
                            first_delay=min(60.0, settings.pricing_catalog_refresh_s),
                        ),
                        name="pricing-catalog",
                    )
                )

    async def stop_background() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if host.plugins:
            await save_health(runtime.pool, host.report())
        await host.stop()

    return runtime.app(MIGRATIONS_DIR, on_started=[start_background], on_stopping=[stop_background])


async def _recover(
    store: PricingStore, runtime: ServiceRuntime, settings: PricingSettings, retry_s: float = 5.0
) -> None:
    """Re-publish what a lost broker took from downstream (services/pricing/recovery.py),
    retrying until it succeeds: a failed attempt leaves the epoch unrecorded."""
    assert settings.broker_epoch
    while True:
        try:
            await recover_broker(
                store,
                runtime.publisher,
                runtime.tracer,
                settings.broker_epoch,
                settings.broker_recover_since,
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - recorded as a failed recovery; try again
            logger.exception("broker recovery failed; retrying")
            await asyncio.sleep(retry_s)


async def _report_health(host: PluginHost, runtime: ServiceRuntime, period: float = 5.0) -> None:
    """Keep `pricing.v_plugin_health` current (what `finfocus plugin list` shows)."""
    while True:
        try:
            await save_health(runtime.pool, host.report())
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - health reporting must never stop the service
            logger.exception("could not record plugin health")
        await asyncio.sleep(period)
