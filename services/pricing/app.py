"""Wiring of the pricing service: `finfocus serve pricing` runs `build_app()`."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.service import ServiceRuntime
from services.pricing.batch import BatchPricer
from services.pricing.config import PricingSettings
from services.pricing.handlers import register_handlers
from services.pricing.host import PluginHost, discover
from services.pricing.plugins import builtin_refs
from services.pricing.specs import SpecSource
from services.pricing.store import PricingStore

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_host(settings: PricingSettings) -> PluginHost:
    """The plugin host: installed plugins (newest version of each), then enabled built-ins."""
    installed, _problems = discover(settings.plugins_dir)
    return PluginHost(
        [*installed, *builtin_refs(settings)],
        timeout=settings.pricing_plugin_timeout_s,
        retries=settings.pricing_plugin_retries,
        ttl=settings.pricing_cache_ttl_s,
        log_dir=settings.logs_dir,
    )


def build_app(settings: PricingSettings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The pricing service: raw-billing -> priced lines in `pricing` -> priced-resources."""
    if settings is not None and not isinstance(settings, PricingSettings):
        settings = PricingSettings(**settings.model_dump())
    settings = settings or PricingSettings()
    runtime = ServiceRuntime(
        "pricing", settings, tracer_provider,
        description="Prices raw billing records (billed, plugins, YAML specs) and stores cost lines",
    )
    store = PricingStore(runtime)
    host = make_host(settings)
    pricer = BatchPricer(runtime.tracer, specs=SpecSource(settings.specs_dir), quotes=host.quotes if host.plugins else None)
    register_handlers(runtime, store, pricer)
    return runtime.app(MIGRATIONS_DIR, on_started=[host.start], on_stopping=[host.stop])
