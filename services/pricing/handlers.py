"""The pricing subscriber: raw-billing batch -> dead letters, stored lines, priced-resources."""

from __future__ import annotations

import logging

from faststream.kafka.annotations import KafkaMessage

from finfocus.broker import consumer_options, envelopes, publish_dead_letters
from finfocus.telemetry import log_fields
from schemas.topics import Topics
from services.pricing.batch import BatchPricer
from services.pricing.store import PricingStore

logger = logging.getLogger(__name__)

GROUP_ID = "finfocus-pricing"


def register_handlers(runtime, store: PricingStore, pricer: BatchPricer) -> None:
    """Subscribe the pricing handler on `runtime.broker`."""
    settings = runtime.settings

    @runtime.broker.subscriber(
        Topics.RAW_BILLING,
        batch=True,
        max_records=getattr(settings, "pricing_batch_max_records", 5000),
        **consumer_options(settings, group_id=GROUP_ID),
    )
    async def price_raw_billing(message: KafkaMessage) -> None:
        outcome = await pricer.process(envelopes(message))
        if outcome.letters:
            await publish_dead_letters(runtime.broker, outcome.letters)
        await store.store_batch(outcome.lines, outcome.positions, sorted(outcome.scopes))
        await runtime.publisher.publish(Topics.PRICED_RESOURCES, outcome.outgoing)
        logger.debug(
            "batch priced",
            extra=log_fields(stored=len(outcome.lines), dead=len(outcome.letters), unpriced=outcome.unpriced),
        )
