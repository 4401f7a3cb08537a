"""The HTTP intake's body parser bounds a token holder's work before any row is built."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from services.ingest.http import BodyError, IntakeLimits, check_rows

ROW = {
    "ProviderName": "AWS",
    "BillingAccountId": "1",
    "ServiceName": "S3",
    "ChargeCategory": "Usage",
    "ChargePeriodStart": "2024-09-01T00:00:00Z",
    "ChargePeriodEnd": "2024-09-01T01:00:00Z",
    "BillingCurrency": "USD",
    "BilledCost": "0.1",
}


@pytest.mark.parametrize(
    "body",
    [
        # 16 MiB of 2.1 M invalid rows once ran 13 minutes at 4.9 GB; a quarter of it here, as
        # building its rows would take well over the bound below
        b"[" + b",".join([b'{"a":1}'] * 500_000) + b"]",
        b"\n".join([b'{"a":1}'] * 500_000),
    ],
)
def test_hundreds_of_thousands_of_tiny_rows_are_refused_before_they_are_built(body):
    tracemalloc.start()
    try:
        with pytest.raises(BodyError) as refused:
            check_rows(body, IntakeLimits(max_rows=1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413 and "more than 1000 rows" in str(refused.value)
    assert peak < 8 * 1024 * 1024, (
        peak
    )  # the body's text at most: 500,000 built rows hold over 50 MB


def test_rows_setting_the_billing_scope_refuse_the_request_and_name_the_rows():
    body = orjson.dumps(
        [ROW, {**ROW, "x_BillingScope": "AWS:9:2024-09"}, {**ROW, "x_BillingScopeVersion": 10**15}]
    )
    with pytest.raises(BodyError) as refused:
        check_rows(body)
    assert refused.value.status == 400 and "row(s) 1, 2 set x_BillingScope" in str(refused.value)


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps([{**ROW, "x_Deep": orjson.loads(b"[" * 40 + b"]" * 40)}]),
        b'[{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}]",
        b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_deep_nesting_is_a_400_not_a_crash(body):
    with pytest.raises(BodyError) as refused:
        check_rows(body, IntakeLimits())
    assert refused.value.status == 400 and "nested deeper" in str(refused.value)


def test_rows_within_the_limits_are_validated_one_by_one():
    records, errors, refused = check_rows(
        orjson.dumps([ROW, {**ROW, "ServiceName": "S3\u0000"}, 7])
    )
    assert len(records) == 1 and [e["index"] for e in errors] == [1, 2]
    assert "NUL character" in errors[0]["error"] and refused[1][1] == b"7"
