"""Usage-only records priced by the service: plugins, then specs, then an explicit none,
with hung, crashing and garbage plugins installed (they only cost their own answers)."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson
import pytest

from schemas.pricing import PricedRecordV1
from schemas.topics import Topics
from services.pricing.app import build_app
from services.pricing.config import PricingSettings
from tests.integration.test_pricing_pipeline import _at_least, produce, read_topic, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pricing"


def usage_record(i: int, resource_type: str, service: str = "AmazonEC2", **extra) -> dict:
    return {
        "ProviderName": "AWS",
        "BillingAccountId": "111111111111",
        "SubAccountId": "222222222222",
        "ChargePeriodStart": "2024-09-01T00:00:00Z",
        "ChargePeriodEnd": "2024-09-01T01:00:00Z",
        "BillingCurrency": "USD",
        "ServiceName": service,
        "ChargeCategory": "Usage",
        "ConsumedQuantity": "10",
        "ConsumedUnit": "Hrs",
        "ResourceType": resource_type,
        "RegionId": "us-east-1",
        "x_RecordId": f"usage-{i}",
        **extra,
    }


async def test_usage_is_priced_by_plugin_then_spec_then_none_despite_bad_plugins(
    settings, tmp_path: Path
):
    home = tmp_path / "ffhome"
    shutil.copytree(FIXTURES / "plugins", home / "plugins")
    shutil.copytree(FIXTURES / "specs", home / "specs")
    pricing_settings = PricingSettings(
        **{**settings.model_dump(), "home": home},
        pricing_plugin_timeout_s=0.5,
        pricing_plugin_retries=1,
    )
    app = build_app(pricing_settings)
    await app.start()
    try:
        records = [
            usage_record(1, "m5.large"),  # flat-prices plugin: 10 h x 0.1
            usage_record(2, "c5.large"),  # no plugin: spec default 10 h x 0.10
            usage_record(3, "db.x", service="AmazonRDS"),  # nothing prices it
            {**usage_record(4, "m5.large"), "BilledCost": "3.21"},  # billed passes through
        ]
        await produce(settings.kafka_bootstrap, [orjson.dumps(r) for r in records])
        await wait_for(lambda: _at_least(settings.database_url, 4), timeout=60)
        priced = {
            p["x_RecordId"]: p
            for p in await read_topic(settings.kafka_bootstrap, Topics.PRICED_RESOURCES, 4)
        }
        for body in priced.values():
            PricedRecordV1.model_validate(body)  # every output honours the contract
        assert priced["usage-1"]["x_PriceSource"] == "plugin:flat-prices"
        assert Decimal(priced["usage-1"]["BilledCost"]) == Decimal("1.0")
        assert priced["usage-2"]["x_PriceSource"] == "spec:aws-ec2-default.yaml"
        assert Decimal(priced["usage-2"]["BilledCost"]) == Decimal("1.00")
        assert (
            priced["usage-3"]["x_PriceSource"] == "none" and "BilledCost" not in priced["usage-3"]
        )
        assert "no plugin or spec" in priced["usage-3"]["x_PriceReason"]
        assert (
            priced["usage-4"]["x_PriceSource"] == "billed"
            and priced["usage-4"]["BilledCost"] == "3.21"
        )
    finally:
        await app.stop()
    conn = await asyncpg.connect(settings.database_url)
    try:
        health = {r["plugin"]: r for r in await conn.fetch("SELECT * FROM pricing.v_plugin_health")}
        lines = {r["record_id"]: r for r in await conn.fetch("SELECT * FROM pricing.v_cost_lines")}
    finally:
        await conn.close()
    assert health["hung"]["failures"] >= 1 and "DEADLINE_EXCEEDED" in health["hung"]["last_error"]
    assert health["crashing"]["failures"] >= 1
    assert "not a decimal" in health["garbage"]["last_error"]
    assert health["flat-prices"]["failures"] == 0
    assert lines["usage-3"]["billed_cost"] is None and lines["usage-3"]["price_source"] == "none"
    assert lines["usage-1"]["billed_cost"] == Decimal("1.0")
