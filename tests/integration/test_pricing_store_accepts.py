"""Whatever BillingRecord v1 accepts, pricing's store stores: a property test on the real
PostgreSQL. A record the contract accepted but the store refused used to fail its whole batch
(up to 10,000 valid records) with no dead letter."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from finfocus.broker import Envelope
from finfocus.db import create_pool, migrate_url
from finfocus.signing import SigningKeys, sign
from schemas.ingest import BillingRecordV1
from schemas.topics import Topics
from services.pricing.batch import BatchPricer
from services.pricing.store import PricingStore
from tests.fuzz.strategies import billing_rows, encode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "pricing" / "migrations"


class _Runtime:
    def __init__(self, pool) -> None:
        self.pool = pool


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def store_and_pricer(database_url, loop, monkeypatch):
    monkeypatch.setenv("FINFOCUS_SECRET_BUS_SIGNING_INGEST", "property-test-key")
    loop.run_until_complete(migrate_url(database_url, "pricing", MIGRATIONS))
    pool = loop.run_until_complete(create_pool(database_url))
    yield PricingStore(_Runtime(pool)), BatchPricer(TracerProvider().get_tracer("test")), pool
    loop.run_until_complete(pool.close())


def test_every_record_the_contract_accepts_is_stored(store_and_pricer, loop):
    store, pricer, pool = store_and_pricer
    keys = SigningKeys()
    seen = {"accepted": 0}

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(billing_rows())
    def stored(row: dict) -> None:
        if "x_RecordId" in row:  # the lines stay in the table: ids unique across examples
            seen["ids"] = seen.get("ids", 0) + 1
            row["x_RecordId"] = f"{row['x_RecordId']}-{seen['ids']}"
        raw = encode(row)
        try:
            record = BillingRecordV1.model_validate_json(raw).with_record_id()
        except ValidationError:
            return  # refused at the edge with a reason: a dead letter, not the store's problem
        seen["accepted"] += 1
        # ingest signs what it scopes; the property is about the store, not the signature
        headers = dict([sign(keys, "ingest", Topics.RAW_BILLING, raw)])
        envelope = Envelope(
            value=raw, key=None, headers=headers, topic=Topics.RAW_BILLING, partition=0, offset=0
        )
        outcome = loop.run_until_complete(pricer.process([envelope]))
        assert not outcome.letters, outcome.letters[0].error
        refused = loop.run_until_complete(
            store.store_batch(
                outcome.lines, outcome.positions, sorted(outcome.scopes), outcome.owners
            )
        )
        assert refused == {}
        line = loop.run_until_complete(
            pool.fetchrow(
                "SELECT billed_cost, billing_account_id, billing_scope_version FROM pricing.cost_lines "
                "WHERE record_id = $1",
                record.x_RecordId,
            )
        )
        if record.x_BillingScope is None or record.x_BillingScopeVersion >= 0:
            # a negative version is older than a scope's base (0), so the prune may remove it
            assert line is not None, record
        if line is not None:
            assert line["billing_account_id"] == record.BillingAccountId
            assert line["billing_scope_version"] == record.x_BillingScopeVersion
            if record.BilledCost is not None:
                assert line["billed_cost"] == Decimal(format(record.BilledCost, "f"))

    stored()
    assert seen["accepted"] >= 30, seen  # the strategy mostly writes records the contract accepts
