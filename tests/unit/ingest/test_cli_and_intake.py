"""Socket-free pieces of the CLI and the HTTP intake: reconciliation, argument routing,
request bodies, FOCUS export rows, chunk packing."""

from __future__ import annotations

import zlib
from decimal import Decimal

import orjson
from typer.testing import CliRunner

from finfocus.cli import app
from services.ingest.cli.export import focus_row
from services.ingest.cli.ingest import reconcile
from services.ingest.domain import Built
from services.ingest.http import check_rows
from services.ingest.store import pack, unpack


def test_reconciliation_compares_each_currency_to_the_cent():
    ok = reconcile(
        {"USD": "20.52022672899", "EUR": "1.0100"},
        {"USD": Decimal("20.520226728990"), "EUR": Decimal("1.01")},
    )
    assert ok["reconciled"] is True
    bad = reconcile({"USD": "20.52"}, {"USD": Decimal("20.51")})
    assert bad["reconciled"] is False and bad["currencies"][0]["stored_total"] == "20.51"
    missing = reconcile({"USD": "1"}, {})
    assert missing["reconciled"] is False


def test_ingest_help_explains_files_first_and_sub_commands():
    result = CliRunner().invoke(app, ["ingest", "--help"])
    assert result.exit_code == 0
    for word in ("FILE...", "replay", "--period", "jobs", "show"):
        assert word in result.output


def test_replay_needs_exactly_one_selector():
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "replay"]).exit_code == 2
    assert (
        runner.invoke(app, ["ingest", "replay", "--job", "a", "--period", "2024-09"]).exit_code == 2
    )
    assert runner.invoke(app, ["ingest", "replay", "--period", "Sept"]).exit_code == 2


def test_a_missing_file_is_a_usage_error():
    assert CliRunner().invoke(app, ["ingest", "/no/such/file.csv"]).exit_code == 2


GOOD = {
    "ProviderName": "AWS",
    "BillingAccountId": "1",
    "ServiceName": "S3",
    "ChargeCategory": "Usage",
    "ChargePeriodStart": "2024-09-01T00:00:00Z",
    "ChargePeriodEnd": "2024-09-01T01:00:00Z",
    "BillingCurrency": "USD",
    "BilledCost": 0.1,
}


def test_intake_bodies_as_array_or_ndjson_give_per_row_errors():
    records, errors, refused = check_rows(orjson.dumps([GOOD, {**GOOD, "BilledCost": "x"}, 3]))
    assert len(records) == 1 and records[0].BilledCost == Decimal("0.1") and records[0].x_RecordId
    assert [e["index"] for e in errors] == [1, 2] and "BilledCost" in errors[0]["error"]
    records, errors, _ = check_rows(orjson.dumps(GOOD) + b"\n{oops\n" + orjson.dumps(GOOD))
    assert len(records) == 2 and errors[0]["index"] == 1
    assert check_rows(b"[not json")[1][0]["error"].startswith("body is not JSON")


def test_published_chunks_round_trip():
    built = Built(keys=[b"AWS:1", b"AWS:2"], values=[b'{"a":1}', b'{"b":"x\\ny"}'])
    assert unpack(pack(built)) == [(b"AWS:1", b'{"a":1}'), (b"AWS:2", b'{"b":"x\\ny"}')]
    assert pack(built).startswith(b"FFZ1") and unpack(pack(Built())) == []


def test_chunks_stored_before_zstd_still_replay():
    legacy = zlib.compress(b'AWS:1\x00{"a":1}\nAWS:2\x00{"b":2}', 1)  # the earlier format
    assert unpack(legacy) == [(b"AWS:1", b'{"a":1}'), (b"AWS:2", b'{"b":2}')]


def test_export_rows_fill_mandatory_focus_columns():
    row = focus_row(
        {
            **GOOD,
            "BilledCost": "1.5",
            "ChargeFrequency": "Usage-based",
            "Tags": {"b": "1", "a": "2"},
        }
    )
    assert (row["EffectiveCost"], row["ListCost"], row["ContractedCost"]) == ("1.5", "1.5", "1.5")
    assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == (
        "2024-09-01T00:00:00Z",
        "2024-10-01T00:00:00Z",
    )
    assert row["ChargeFrequency"] == "Usage-Based" and row["ServiceCategory"] == "Other"
    assert row["InvoiceIssuerName"] == row["PublisherName"] == "AWS"
    assert row["Tags"] == '{"a":"2","b":"1"}'
