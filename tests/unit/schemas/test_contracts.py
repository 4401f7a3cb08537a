"""The event contracts: what they accept, what they refuse, and how money travels."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas import AnomalyV1, BillingRecordV1, DeadLetterV1, PricedRecordV1, RemediationCommandV1
from schemas.generate import CONTRACTS, JSON_DIR, render
from schemas.remediation import derive_command_id
from schemas.topics import Topics


def billed(**overrides) -> dict:
    row = {
        "ProviderName": "AWS",
        "BillingAccountId": "012345678901",
        "SubAccountId": "000111222333",
        "ChargePeriodStart": "2024-09-01T00:00:00Z",
        "ChargePeriodEnd": "2024-09-01T01:00:00Z",
        "BillingCurrency": "USD",
        "ServiceName": "Amazon Elastic Compute Cloud",
        "ChargeCategory": "Usage",
        "BilledCost": "0.0416",
    }
    row.update(overrides)
    return row


def test_committed_json_schemas_match_the_models():
    for name in CONTRACTS:
        committed = (JSON_DIR / f"{name}.json").read_text()
        assert committed == render(name), f"schemas/json/{name}.json drifted: run `make schemas`"


def test_money_round_trips_as_exact_decimal_strings():
    record = BillingRecordV1.model_validate(billed(BilledCost=0.1, EffectiveCost="-12.3400"))
    assert record.BilledCost == Decimal("0.1")
    dumped = json.loads(record.model_dump_json())
    assert dumped["BilledCost"] == "0.1"
    assert dumped["EffectiveCost"] == "-12.3400"  # credits are negative and legal


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"BilledCost": "twelve"}, "decimal"),
        ({"BillingCurrency": "XYZ"}, "unknown currency"),
        ({"BillingCurrency": "usd"}, "unknown currency"),
        ({"ChargeCategory": "Discount"}, "ChargeCategory"),
        ({"ChargePeriodEnd": "2024-08-31T23:00:00Z"}, "before ChargePeriodStart"),
        ({"BilledCost": "NaN"}, "finite"),
        ({"Colour": "blue"}, "unknown column"),
    ],
)
def test_invalid_billing_records_are_refused_with_a_reason(overrides, reason):
    with pytest.raises(ValidationError) as error:
        BillingRecordV1.model_validate(billed(**overrides))
    assert reason in str(error.value)


def test_missing_required_field_is_refused():
    row = billed()
    del row["ServiceName"]
    with pytest.raises(ValidationError, match="ServiceName"):
        BillingRecordV1.model_validate(row)


def test_usage_only_record_needs_quantity_unit_and_sku_or_type():
    usage = billed(
        BilledCost=None, ConsumedQuantity="730", ConsumedUnit="Hours", ResourceType="t3.micro"
    )
    assert BillingRecordV1.model_validate(usage).BilledCost is None
    with pytest.raises(ValidationError, match="SkuId nor ResourceType"):
        BillingRecordV1.model_validate({**usage, "ResourceType": None})
    with pytest.raises(ValidationError, match="no usage to price"):
        BillingRecordV1.model_validate(billed(BilledCost=None))


def test_naive_timestamps_mean_utc_and_serialise_as_rfc3339():
    record = BillingRecordV1.model_validate(
        billed(ChargePeriodStart="2024-09-18 22:00:00", ChargePeriodEnd="2024-09-18 23:00:00")
    )
    assert json.loads(record.model_dump_json())["ChargePeriodStart"] == "2024-09-18T22:00:00Z"


def test_extension_columns_are_kept_and_record_id_is_deterministic():
    a = BillingRecordV1.model_validate(billed(x_CostCenter="42")).with_record_id()
    b = BillingRecordV1.model_validate(billed(x_CostCenter="42")).with_record_id()
    c = BillingRecordV1.model_validate(billed(BilledCost="0.0417")).with_record_id()
    assert a.x_RecordId == b.x_RecordId != c.x_RecordId
    assert a.model_dump()["x_CostCenter"] == "42"


def test_record_id_ignores_transport_columns_but_separates_repeated_rows():
    from schemas.ingest import derive_record_id

    row = billed()
    assert derive_record_id(row) == derive_record_id(
        {**row, "x_ImportJobId": "job-2", "x_BillingScopeVersion": 7}
    )
    assert derive_record_id(row, occurrence=1) != derive_record_id(row)


def test_partition_key_is_provider_and_sub_account():
    assert BillingRecordV1.model_validate(billed()).partition_key() == b"AWS:000111222333"
    assert (
        BillingRecordV1.model_validate(billed(SubAccountId=None)).partition_key()
        == b"AWS:012345678901"
    )


def test_priced_record_requires_cost_unless_no_price():
    base = billed(x_RecordId="r1")
    assert PricedRecordV1.model_validate({**base, "x_PriceSource": "billed"}).BilledCost == Decimal(
        "0.0416"
    )
    unpriced = {
        **base,
        "BilledCost": None,
        "ConsumedQuantity": "1",
        "ConsumedUnit": "Hours",
        "SkuId": "X",
        "x_PriceSource": "none",
    }
    assert PricedRecordV1.model_validate(unpriced).BilledCost is None
    with pytest.raises(ValidationError):
        PricedRecordV1.model_validate({**unpriced, "x_PriceSource": "spec:aws.yaml"})
    with pytest.raises(ValidationError):
        PricedRecordV1.model_validate({**base, "x_PriceSource": "guess"})


def test_own_events_forbid_unknown_fields():
    anomaly = {
        "anomaly_id": "a1",
        "detected_at": "2024-09-03T00:00:00Z",
        "window_start": "2024-09-02T00:00:00Z",
        "window_end": "2024-09-03T00:00:00Z",
        "dimension": {"ProviderName": "AWS"},
        "expected_cost": "10",
        "actual_cost": "25",
        "impact": "15",
        "impact_pct": "150",
        "currency": "USD",
        "severity": "high",
        "score": 7.5,
        "detector": "mad",
    }
    assert AnomalyV1.model_validate(anomaly).status == "open"
    with pytest.raises(ValidationError):
        AnomalyV1.model_validate({**anomaly, "surprise": 1})


def test_command_id_is_deterministic_and_actions_are_kebab_case():
    assert derive_command_id("a1", "stop-instance", "i-1") == derive_command_id(
        "a1", "stop-instance", "i-1"
    )
    assert derive_command_id("a1", "stop-instance", "i-1") != derive_command_id(
        "a2", "stop-instance", "i-1"
    )
    command = {
        "command_id": "c1",
        "issued_at": "2024-09-03T00:00:00Z",
        "action": "StopInstance",
        "target": {"provider": "AWS", "resource_id": "i-1"},
        "reason": {"text": "spike"},
    }
    with pytest.raises(ValidationError):
        RemediationCommandV1.model_validate(command)
    assert (
        RemediationCommandV1.model_validate({**command, "action": "stop-instance"}).mode
        == "dry-run"
    )


def test_dead_letter_keeps_non_utf8_bytes_as_base64():
    text, encoding = DeadLetterV1.encode_original(b"\xff\xfe")
    assert encoding == "base64" and text == "//4="
    assert DeadLetterV1.encode_original(b'{"a":1}') == ('{"a":1}', "utf-8")


def test_every_core_topic_has_a_dead_letter_topic():
    assert {f"{t}.dlq" for t in Topics.CORE} <= set(Topics.all())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"ServiceName": "EC2\x00"}, "NUL character"),
        ({"ResourceId": "i-" + "0" * 8191}, "longer than 8192"),
        ({"ResourceId": "bad \ud800 surrogate"}, "unable to parse raw data as a unicode"),
        ({"x_Note": "bad \ud800 surrogate"}, "x_Note: text contains a lone surrogate"),
        ({"Tags": {"team": "a\x00"}}, "NUL character"),
        ({"x_BillingScopeVersion": 2**63}, "less than or equal to 9223372036854775807"),
        ({"BilledCost": "1" * 140_000}, "more than 24 digits before the decimal point"),
        ({"BilledCost": "0." + "0" * 24 + "1"}, "more than 24 digits after the decimal point"),
        ({"BilledCost": "1E+999999"}, "more than 24 digits before"),
        ({"ChargePeriodStart": "0001-01-01T00:00:00+05:00"}, "outside years 1 to 9999"),
        ({"ChargePeriodEnd": "9999-12-31T23:00:00-05:00"}, "outside years 1 to 9999"),
        ({"x_Note": "a\x00b"}, "x_Note: text contains a NUL"),
        ({"x_Count": 2**64}, "x_Count: integer"),
        (
            {"SkuPriceDetails": {"a": [[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]}},
            "nested deeper than 16",
        ),
    ],
)
def test_values_the_stores_cannot_hold_are_refused_with_a_reason(overrides, reason):
    # each of these once passed the contract and then failed a whole batch in pricing's store
    with pytest.raises(ValidationError) as error:
        BillingRecordV1.model_validate(billed(**overrides))
    assert reason in str(error.value)


def test_values_at_the_bounds_are_accepted():
    record = BillingRecordV1.model_validate(
        billed(
            BilledCost="-" + "9" * 24 + "." + "9" * 24,
            x_BillingScopeVersion=2**63 - 1,
            ChargePeriodStart="0001-01-01T00:00:00Z",
            ChargePeriodEnd="9999-12-31T18:59:59-05:00",
            ResourceId="é" * 8192,
            x_Count=-(2**63),
            x_Nested={"a": [1, 2.5, None, True, "x"]},
        )
    )
    assert json.loads(record.model_dump_json())["ChargePeriodEnd"] == "9999-12-31T23:59:59Z"


def test_a_budget_amount_beyond_the_bound_is_refused():
    from schemas.budget import BudgetCommandV1

    command = {
        "action": "set",
        "name": "big",
        "currency": "USD",
        "issued_at": "2024-09-01T00:00:00Z",
    }
    with pytest.raises(ValidationError, match="more than 24 digits before"):
        BudgetCommandV1.model_validate({**command, "amount": "1e999999"})
    assert BudgetCommandV1.model_validate({**command, "amount": "1500.00"}).amount == Decimal(
        "1500.00"
    )


def test_an_oversized_anomaly_is_refused_at_the_edge():
    # an anomaly too large for a dead-letter batch used to break remediation's consumer
    from schemas.anomaly import AnomalyV1

    anomaly = {
        "anomaly_id": "a1",
        "detected_at": "2024-09-02T00:00:00Z",
        "window_start": "2024-09-01T00:00:00Z",
        "window_end": "2024-09-02T00:00:00Z",
        "dimension": {"ServiceName": "EC2"},
        "expected_cost": "1",
        "actual_cost": "2",
        "impact": "1",
        "currency": "USD",
        "severity": "low",
        "score": 3.5,
        "detector": "mad",
    }
    AnomalyV1.model_validate(anomaly)
    cause = {"dimension": {"RegionId": "us-east-1"}, "contribution": "0.01"}
    for oversized in (
        {"dimension": {"ServiceName": "x" * 100_000}},
        {"root_causes": [cause] * 101},
        {"score": float("inf")},
        {"detector": "mad\x00"},
    ):
        with pytest.raises(ValidationError):
            AnomalyV1.model_validate({**anomaly, **oversized})
