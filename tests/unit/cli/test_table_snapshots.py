"""Every command's table rendered at 80, 100 and 160 columns, compared with committed snapshots.

Readable means: ids, dates and money never cut (a column that does not fit is left out whole,
and `--wide` keeps it), long text shortened (the `show` command or `--wide` has it whole), money
to the cent, no Python reprs, "1 anomaly". A missing snapshot fails the test; write snapshots
after an intended change with FINFOCUS_UPDATE_SNAPSHOTS=1 (and review the diff).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

import finfocus.cli.output as output
from finfocus.cli import app

SNAPSHOTS = Path(__file__).parent / "snapshots"
WIDTHS = (80, 100, 160)
#: column kinds whose cells are never shortened with an ellipsis
WHOLE_KINDS = {"id", "date", "money", "number"}
REC_ID = "rec-5d41402abc4b2a76b9719d911017c592"

ANOMALY_ID = "anm-112c9d0e4f5a6b7c8d9e0f1a2b3c4d5e"
COMMAND_ID = "cmd-7f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c"
ARN = "arn:aws:ec2:us-east-1:210987654321:instance/i-07c6d4e0f3a5b1829"
REASON = (
    "Anomaly anm-112c9d0e4f5a6b7c8d9e0f1a2b3c4d5e: EC2 cost rose from 20.12 to 972.66 a day after "
    "the instance was resized to c5.24xlarge; stopping it saves about 2,918.00 a month."
)


def anomaly(i: int, impact: str) -> dict:
    return {
        "anomaly_id": ANOMALY_ID if i == 0 else f"anm-{i:032x}",
        "detected_at": "2026-12-01T06:00:00Z",
        "window_start": "2026-11-28T00:00:00Z",
        "window_end": "2026-12-01T00:00:00Z",
        "dimension": {
            "ProviderName": "AWS",
            "SubAccountId": "210987654321",
            "ServiceName": "Amazon Elastic Compute Cloud",
        },
        "expected_cost": "60.3600",
        "actual_cost": "2992.5772000000",
        "impact": impact,
        "impact_pct": "4857.8",
        "currency": "USD",
        "severity": "critical",
        "score": 41.2,
        "detector": "seasonal-mad",
        "root_causes": [{"dimension": {"ResourceId": ARN}, "contribution": "2918.0012"}],
        "status": "open",
    }


def forecast(group: dict, mean: str) -> dict:
    m = Decimal(mean)
    return {
        "group": group,
        "model": "DynamicOptimizedTheta",
        "trained_through": "2026-12-01",
        "currency": "USD",
        "points": [
            {
                "date": f"2026-12-{d:02d}",
                "mean": str(m + d % 7),
                "lo_80": str(m - 2),
                "hi_80": str(m + 9),
                "lo_95": str(m - 4),
                "hi_95": str(m + 11),
            }
            for d in range(2, 32)
        ],
    }


async def _return(value):
    return value


FIXTURES = {
    "forecast_show": (
        ["forecast", "show", "-g", "provider,service"],
        {
            "services.forecast.cli.forecast.load": lambda *a: _return(
                [
                    forecast({"provider": "Google Cloud", "service": "BigQuery"}, "8.13"),
                    forecast(
                        {"provider": "AWS", "service": "Amazon Elastic Compute Cloud"}, "32.68"
                    ),
                    forecast({"provider": "Microsoft", "service": None}, "0.5"),
                ]
            )
        },
    ),
    "forecast_month_end": (
        ["forecast", "month-end", "-g", "service"],
        {
            "services.forecast.cli.forecast.load_month_end": lambda *a: _return(
                [
                    {
                        "group": {"service": s},
                        "currency": "USD",
                        "period_start": "2026-12-01",
                        "period_end": "2027-01-01",
                        "trained_through": "2026-12-01",
                        "actual_to_date": a,
                        "forecast_remainder": r,
                        "projected": p,
                        "lo_95": lo,
                        "hi_95": hi,
                    }
                    for s, a, r, p, lo, hi in [
                        (
                            "Amazon Elastic Compute Cloud",
                            "32.68",
                            "980.28",
                            "1012.96",
                            "990.10",
                            "1035.11",
                        ),
                        ("BigQuery", "8.13", "244.04", "252.17", "221.57", "284.14"),
                    ]
                ]
            )
        },
    ),
    "anomalies_list": (
        ["anomalies", "list"],
        {
            "services.anomaly.cli.fetch_anomalies": lambda *a: _return(
                [anomaly(0, "2932.2172000000")]
            )
        },
    ),
    "anomalies_list_many": (
        ["anomalies", "list"],
        {
            "services.anomaly.cli.fetch_anomalies": lambda *a: _return(
                [anomaly(0, "2932.21"), anomaly(1, "12.5")]
            )
        },
    ),
    "remediation_list": (
        ["remediation", "list"],
        {
            "services.remediation.cli._list_commands": lambda *a: _return(
                [
                    {
                        "command_id": COMMAND_ID,
                        "status": "pending-approval",
                        "action": "stop-instance",
                        "target": {"resource_id": "i-07c6d4e0f3a5b1829"},
                        "mode": "execute",
                        "playbook": "stop-idle-spikes",
                        "expected_monthly_savings": "2918.004500",
                        "reason": {"text": REASON},
                        "result": None,
                    },
                    {
                        "command_id": "cmd-00aa",
                        "status": "executed",
                        "action": "release-address",
                        "target": {"resource_id": "eipalloc-0abc"},
                        "mode": "dry-run",
                        "playbook": None,
                        "expected_monthly_savings": "3.65",
                        "reason": {"text": "idle"},
                        "result": {"status": "ok", "dry_run": True},
                    },
                ]
            )
        },
    ),
    "remediation_audit": (
        ["remediation", "audit"],
        {
            "services.remediation.cli._audit": lambda *a: _return(
                [
                    {
                        "at": datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
                        "command_id": COMMAND_ID,
                        "event": "executed",
                        "actor": "cli:alice",
                        "reason": REASON,
                        "result": {"status": "ok", "dry_run": True},
                    },
                ]
            )
        },
    ),
    "recommendations_list": (
        ["recommendations", "list"],
        {
            "services.remediation.cli._recommendations": lambda *a: _return(
                [
                    {
                        "recommendation_id": "rec-5d41402abc4b2a76b9719d911017c592",
                        "type": "rightsize-instance",
                        "resource_id": ARN,
                        "account_id": "210987654321",
                        "estimated_monthly_savings": Decimal("1459.0022500"),
                        "currency": "USD",
                        "action": "resize-instance",
                        "state": "open",
                        "rationale": REASON,
                    },
                ]
            )
        },
    ),
    "savings_report": (
        ["savings", "report"],
        {
            "services.remediation.cli._savings": lambda *a: _return(
                [
                    {
                        "playbook": "stop-idle",
                        "account_id": "210987654321",
                        "action": "stop-instance",
                        "currency": "USD",
                        "expected_monthly": Decimal("150.00"),
                        "realised_monthly": None,
                    },
                    {
                        "playbook": "release",
                        "account_id": "210987654321",
                        "action": "release-address",
                        "currency": "USD",
                        "expected_monthly": Decimal("3.65"),
                        "realised_monthly": Decimal("3.6512"),
                    },
                ]
            )
        },
    ),
    "ingest_show": (
        ["ingest", "show", "job-1"],
        {
            "services.ingest.cli.ingest._job_ids": lambda *a: _return(["job-1", "job-10"]),
            "services.ingest.cli.ingest._jobs": lambda *a: _return(
                [
                    {
                        "job_id": "job-1",
                        "version": 2,
                        "status": "done",
                        "format": "focus",
                        "rows_read": 5400,
                        "rows_published": 5400,
                        "rows_rejected": 0,
                        "totals": {"USD": Decimal("5843.6700000000")},
                        "scopes": [{"scope": "AWS:210987654321:2026-11", "version": 2}],
                        "strict": False,
                        "result": {"status": "ok", "replaced": True},
                        "finished_at": datetime(2026, 12, 1, 6, tzinfo=UTC),
                    },
                ]
            ),
        },
    ),
    "catalog_show": (
        ["catalog", "show"],
        {
            "services.pricing.cli.catalog._show": lambda *a: _return(
                [
                    {
                        "provider": "AWS",
                        "service": "Amazon Elastic Compute Cloud",
                        "sku": "BoxUsage:c5.24xlarge",
                        "region": "us-east-1",
                        "unit": "Hrs",
                        "unit_price": Decimal("4.0800000000"),
                        "currency": "USD",
                        "effective_from": datetime(2026, 1, 1, tzinfo=UTC),
                        "effective_to": None,
                        "source": "plugin:aws-public",
                    },
                    {
                        "provider": "AWS",
                        "service": "AWS Lambda",
                        "sku": "AWS-Lambda-Duration",
                        "region": "us-east-1",
                        "unit": "GB-Seconds",
                        "unit_price": Decimal("0.0000166667"),
                        "currency": "USD",
                        "effective_from": datetime(2026, 1, 1, tzinfo=UTC),
                        "effective_to": None,
                        "source": "spec:lambda.yaml",
                    },
                ]
            )
        },
    ),
    "budget_alerts": (
        ["budget", "alerts"],
        {
            "services.forecast.cli.budget._alerts": lambda *a: _return(
                [
                    {
                        "alert_id": "bud-prod-2026-12-80-projected",
                        "name": "prod",
                        "period_start": date(2026, 12, 1),
                        "period_end": date(2027, 1, 1),
                        "kind": "projected",
                        "percent": Decimal("80"),
                        "limit_amount": Decimal("2400.000"),
                        "spend": Decimal("2717.0312"),
                        "currency": "USD",
                        "raised_at": datetime(2026, 12, 2, 6, 0, tzinfo=UTC),
                    },
                ]
            )
        },
    ),
    "budget_list": (
        ["budget", "list"],
        {
            "services.forecast.cli.budget._rows": lambda *a: _return(
                [
                    {
                        "name": "prod-platform",
                        "amount": Decimal("2400.000"),
                        "currency": "USD",
                        "period": "monthly",
                        "scope": {"provider": "AWS", "account": "210987654321"},
                        "thresholds": [80, 100],
                        "period_start": date(2026, 12, 1),
                        "period_end": date(2027, 1, 1),
                        "trained_through": date(2026, 12, 1),
                        "actual_to_date": Decimal("92.5012"),
                        "projected": Decimal("2717.0312"),
                        "lo_95": Decimal("2501.10"),
                        "hi_95": Decimal("2950.77"),
                        "alerts_this_period": 1,
                    },
                    {
                        "name": "all",
                        "amount": Decimal("10000"),
                        "currency": "USD",
                        "period": "monthly",
                        "scope": {},
                        "thresholds": [100],
                        "period_start": date(2026, 12, 1),
                        "period_end": date(2027, 1, 1),
                        "trained_through": None,
                        "actual_to_date": Decimal("0"),
                        "projected": None,
                        "lo_95": None,
                        "hi_95": None,
                        "alerts_this_period": 0,
                    },
                ]
            )
        },
    ),
    "ingest_jobs": (
        ["ingest", "jobs"],
        {
            "services.ingest.cli.ingest._jobs": lambda *a: _return(
                [
                    {
                        "job_id": "job-3f2a9c1e7b5d4a6f8e0c2b4d6f8a0c1e",
                        "version": 12,
                        "status": "done",
                        "format": "focus",
                        "rows_read": 1250000,
                        "rows_published": 1249998,
                        "rows_rejected": 2,
                        "totals": {"USD": Decimal("184211.5500000000"), "EUR": Decimal("12.4")},
                        "finished_at": datetime(2026, 12, 1, 6, 0, 12, tzinfo=UTC),
                    },
                    {
                        "job_id": "job-1",
                        "version": 11,
                        "status": "failed",
                        "format": "aws-cur",
                        "rows_read": 0,
                        "rows_published": 0,
                        "rows_rejected": 0,
                        "totals": None,
                        "finished_at": None,
                    },
                ]
            )
        },
    ),
    "plugin_list": (
        ["plugin", "list"],
        {
            "services.pricing.host.discover": lambda *a, **k: (
                [
                    SimpleNamespace(
                        name="aws-public",
                        directory=Path("/home/finfocus/plugins/aws-public/1.4.2"),
                        manifest=SimpleNamespace(
                            version="1.4.2",
                            description=(
                                "AWS list prices from the public Price List API for EC2, EBS, RDS, Lambda and S3"
                            ),
                        ),
                    )
                ],
                [],
            ),
            "services.pricing.cli.plugin._health": lambda *a: _return(
                {"aws-public": {"state": "healthy"}}
            ),
        },
    ),
    "playbooks_list": (
        ["playbooks", "list"],
        {
            "services.remediation.playbooks.load_playbooks": lambda *a: (
                [
                    SimpleNamespace(
                        name="stop-idle-spikes",
                        enabled=True,
                        mode="execute",
                        trigger=SimpleNamespace(anomaly=True),
                        actions=[
                            SimpleNamespace(action="stop-instance"),
                            SimpleNamespace(action="snapshot-volume"),
                        ],
                        approval=SimpleNamespace(required=True),
                    ),
                    SimpleNamespace(
                        name="release-unattached-addresses",
                        enabled=False,
                        mode="dry-run",
                        trigger=SimpleNamespace(anomaly=None),
                        actions=[SimpleNamespace(action="release-address")],
                        approval=SimpleNamespace(required=False),
                    ),
                ],
                [],
            ),
            "services.remediation.cli._playbook_switches": lambda *a: _return(
                {"stop-idle-spikes": False}
            ),
        },
    ),
    "monitors_list": (
        ["anomalies", "monitors", "list"],
        {
            "services.anomaly.cli._stored_monitors": lambda *a: _return(
                [
                    {
                        "name": "services",
                        "dimensions": ["ProviderName", "SubAccountId", "ServiceName"],
                        "filters": {},
                        "top": None,
                        "detector": "robust-seasonal",
                        "params": {},
                    },
                    {
                        "name": "prod-ec2-by-region",
                        "dimensions": ["RegionId"],
                        "filters": {
                            "ServiceName": "Amazon Elastic Compute Cloud",
                            "tag:env": "prod",
                        },
                        "top": 20,
                        "detector": "robust-seasonal",
                        "params": {"threshold": 6, "trend_lag": 7},
                    },
                ]
            )
        },
    ),
    "remediation_show": (
        ["remediation", "show", "cmd-7f3e"],
        {
            "services.remediation.cli._command_ids": lambda *a: _return([COMMAND_ID]),
            "services.remediation.cli._list_commands": lambda *a: _return(
                [
                    {
                        "command_id": COMMAND_ID,
                        "status": "pending-approval",
                        "action": "stop-instance",
                        "target": {"resource_id": "i-07c6d4e0f3a5b1829", "region": "us-east-1"},
                        "mode": "execute",
                        "playbook": "stop-idle-spikes",
                        "anomaly_id": ANOMALY_ID,
                        "expected_monthly_savings": "2918.004500",
                        "currency": "USD",
                        "issued_at": "2026-12-01T06:05:00Z",
                        "expires_at": "2026-12-02T06:05:00Z",
                        "reason": {"text": REASON},
                        "result": None,
                    }
                ]
            ),
        },
    ),
    "recommendations_show": (
        ["recommendations", "show", "rec-5d41"],
        {
            "services.remediation.cli._recommendation_ids": lambda *a: _return([REC_ID]),
            "services.remediation.cli._recommendations": lambda *a: _return(
                [
                    {
                        "recommendation_id": REC_ID,
                        "type": "rightsize-instance",
                        "resource_id": ARN,
                        "account_id": "210987654321",
                        "estimated_monthly_savings": Decimal("1459.0022500"),
                        "currency": "USD",
                        "action": "resize-instance",
                        "state": "open",
                        "rationale": REASON,
                    }
                ]
            ),
        },
    ),
    "fx_show": (
        ["fx", "show"],
        {
            "services.pricing.store.fetch_fx_rates": lambda *a: _return(
                [
                    SimpleNamespace(
                        day=date(2026, 11, 30),
                        base="EUR",
                        currency=c,
                        rate=Decimal(r),
                        source="ECB euro foreign exchange reference rates (eurofxref-hist.csv)",
                    )
                    for c, r in (("USD", "1.0512"), ("GBP", "0.8331"), ("JPY", "161.42"))
                ]
            ),
            "finfocus.db.reader": lambda *a: _Conn(),
            "services.pricing.fx.RateTable": lambda rates: SimpleNamespace(latest=lambda *a: rates),
        },
    ),
    "prices_show": (
        ["prices", "show"],
        {
            "services.pricing.snapshot.PriceSnapshot.load": lambda *a: SimpleNamespace(
                infos=[
                    SimpleNamespace(
                        public=lambda c=c: {
                            "cloud": c,
                            "source": f"{c} public list prices (bulk offer files)",
                            "effectiveDate": "2026-09-01",
                            "ageDays": 92,
                            "prices": 48211,
                            "history": 1203,
                            "bundled": c != "aws",
                            "file": f"/home/finfocus/.finfocus/prices/{c}.json",
                        }
                    )
                    for c in ("aws", "azure", "gcp")
                ]
            ),
        },
    ),
}


class _Conn:
    """A stand-in for `finfocus.db.reader(...)` where the fetch itself is replaced."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


def _target(target: str):
    """The object and attribute a dotted name ends in (`pkg.module.Class.attr` included)."""
    parts = target.split(".")
    for n in range(len(parts) - 1, 0, -1):
        try:
            obj = __import__(".".join(parts[:n]), fromlist=["_"])
        except ImportError:
            continue
        for p in parts[n:-1]:
            obj = getattr(obj, p)
        return obj, parts[-1]
    raise ImportError(target)


def _record_tables(monkeypatch) -> list[tuple[list, list[list[str]], bool]]:
    """Every table drawn from now on: (columns, cells as printed, wide)."""
    original = output.render_table
    drawn: list = []

    def recording(columns, rows, *, title=None, wide=False, whole=None):
        rows = [list(r) for r in rows]
        drawn.append((columns, [[output._cell(v) for v in r] for r in rows], wide))
        original(columns, rows, title=title, wide=wide, whole=whole)

    monkeypatch.setattr(output, "render_table", recording)
    for module in list(sys.modules.values()):  # modules that imported it by name
        if (
            getattr(module, "__name__", "").startswith("services.")
            and getattr(module, "render_table", None) is original
        ):
            monkeypatch.setattr(module, "render_table", recording)
    return drawn


def assert_nothing_whole_was_cut(text: str, drawn) -> None:
    """No cell of an id, date, money or number column ends in an ellipsis: it is shown whole,
    as a unique prefix (ids that commands accept), or its column is left out whole."""
    import re

    assert drawn, "no table was drawn"
    flat = " ".join(text.split())
    hidden = {
        n
        for m in re.finditer(r"not shown for width: (.*?) \(--wide", flat)
        for n in m.group(1).split(", ")
    }
    for columns, cells, wide in drawn:
        for i, column in enumerate(columns):
            if column.kind not in WHOLE_KINDS:
                continue
            for row in cells:
                value = row[i].split("\n")[0]
                if column.name in hidden and not wide:
                    continue  # left out whole
                if column.prefix and "unique prefixes" in flat:
                    assert any(
                        t.startswith(value[:12]) and value.startswith(t) for t in text.split()
                    ), value
                else:
                    assert value in text, f"{column.name}: {value!r} is not shown whole"
                for n in range(
                    max(1, min(4, len(value) - 1)), len(value)
                ):  # shorter stubs match other text
                    cut = value[:n].rstrip() + "…"
                    assert cut not in text, f"{column.name} cut: {cut!r}"


def render(name: str, width: int, monkeypatch, extra: list[str] = ()) -> str:
    args, patches = FIXTURES[name]
    for target, fake in patches.items():
        obj, attr = _target(target)
        monkeypatch.setattr(obj, attr, fake)
    recorder = Console(
        width=width,
        record=True,
        color_system=None,
        force_terminal=False,
        file=open(os.devnull, "w"),  # noqa: SIM115 - output discarded, recorded
    )
    monkeypatch.setattr(output, "console", recorder)
    monkeypatch.setenv(
        "FINFOCUS_DATABASE_URL", "postgresql://unused@127.0.0.1:1/none"
    )  # never connected
    monkeypatch.delenv("FINFOCUS_API_URL", raising=False)
    monkeypatch.setenv("FINFOCUS_HOME", "/home/finfocus/.finfocus")
    drawn = _record_tables(monkeypatch)
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    text = recorder.export_text() + result.output
    if not name.endswith("_show") or name in {
        "catalog_show",
        "forecast_show",
        "fx_show",
        "prices_show",
    }:
        assert_nothing_whole_was_cut(text, drawn)
    return text


def check_snapshot(path: Path, text: str) -> None:
    """Compare with the committed snapshot; write it only when FINFOCUS_UPDATE_SNAPSHOTS=1."""
    if os.environ.get("FINFOCUS_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.exists(), (
        f"no snapshot {path.name}: run with FINFOCUS_UPDATE_SNAPSHOTS=1 and review it"
    )
    assert text == path.read_text()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_table_matches_its_snapshot(name, width, monkeypatch):
    text = render(name, width, monkeypatch)
    assert all(len(line) <= width for line in text.splitlines()), (
        "the table is wider than the terminal"
    )
    assert "{'" not in text and "True" not in text  # no Python reprs
    for line in text.splitlines():  # an id column: whole, or a unique prefix that commands accept
        for full in (ANOMALY_ID, COMMAND_ID, REC_ID):
            token = next((t for t in line.split() if t.startswith(full[:8])), None)
            if token and line.lstrip().startswith(token):
                assert token == full or (
                    len(token) >= 12 and full.startswith(token) and "unique prefixes" in text
                ), f"an id was cut: {token}"
    check_snapshot(SNAPSHOTS / f"{name}_{width}.txt", text)


def test_money_is_rounded_to_cents_and_one_anomaly_is_singular(monkeypatch):
    text = render("anomalies_list", 100, monkeypatch)
    assert "2,932.22 USD" in text and "2932.2172" not in text
    assert "1 anomaly" in text and "1 anomalies" not in text
    assert "2 anomalies" in render("anomalies_list_many", 100, monkeypatch)


def test_savings_not_measured_yet_instead_of_zero(monkeypatch):
    text = render("savings_report", 160, monkeypatch)
    assert "not measured yet" in text and "3.65" in text


def test_forecast_tables_are_sorted_by_cost_with_a_share_and_untagged_values(monkeypatch):
    text = render("forecast_show", 160, monkeypatch)
    assert text.index("Amazon Elastic") < text.index("BigQuery") < text.index("(none)")
    assert "%" in text


def test_unit_prices_keep_their_digits(monkeypatch):
    text = render("catalog_show", 80, monkeypatch)
    assert "0.0000166667" in text and "4.08" in text and "BoxUsage:c5.24xlarge" in text


def test_audit_and_results_print_no_python_reprs(monkeypatch):
    text = render("remediation_audit", 160, monkeypatch)
    assert "status: ok, dry_run:" in text and "yes" in text


def _direct(name: str, width: int, monkeypatch, draw) -> str:
    recorder = Console(
        width=width,
        record=True,
        color_system=None,
        force_terminal=False,
        file=open(os.devnull, "w"),  # noqa: SIM115 - output discarded, recorded
    )
    monkeypatch.setattr(output, "console", recorder)
    draw()
    text = recorder.export_text()
    check_snapshot(SNAPSHOTS / f"{name}_{width}.txt", text)
    return text


@pytest.mark.parametrize("width", WIDTHS)
def test_cost_actual_table_sorted_by_cost_with_share_and_untagged(width, monkeypatch, capsys):
    from services.pricing.cli.cost import actual_table

    summary = {"totalCost": "3000.5772000000", "currency": "USD", "unpriced": 0}
    results = [
        {
            "group": {"service": "BigQuery", "tag:team": None},
            "cost": "8.1300000000",
            "currency": "USD",
        },
        {
            "group": {"service": "Amazon Elastic Compute Cloud", "tag:team": "platform"},
            "cost": "2992.4472000000",
            "currency": "USD",
        },
    ]
    text = _direct(
        "cost_actual",
        width,
        monkeypatch,
        lambda: actual_table(summary, results, ["service", "tag:team"], "billed"),
    )
    assert text.index("Amazon Elastic") < text.index("BigQuery")
    assert "2,992.45" in text and "(untagged)" in text and "99.7 %" in text
    assert "Total USD: 3,000.58" in capsys.readouterr().out


@pytest.mark.parametrize("width", WIDTHS)
def test_anomalies_show_is_a_detail_view_with_the_feedback_note(width, monkeypatch):
    from services.anomaly.cli import show_detail

    series = [(date(2026, 11, 7 + d), Decimal("20.12") + d % 7) for d in range(21)]
    series += [
        (date(2026, 11, 28 + d), Decimal(v)) for d, v in enumerate(("972.66", "1010.02", "1009.90"))
    ]
    text = _direct(
        "anomalies_show",
        width,
        monkeypatch,
        lambda: show_detail(
            anomaly(0, "2932.2172000000"),
            {"verdict": "planned", "note": "load test for the launch", "actor": "cli"},
            series,
        ),
    )
    assert ANOMALY_ID in text and "load test for the launch" in text and "planned" in text
    assert "2,932.22 USD" in text
    assert "▁" * 21 + "▇█▇" in text  # the quiet weeks, then the window
    assert "2026-11-07 to 2026-11-30, daily 20.12 to 1,010.02" in " ".join(text.split())


@pytest.mark.parametrize(
    ("name", "whole"),
    [
        ("fx_show", "ECB euro foreign exchange reference rates (eurofxref-hist.csv)"),
        ("prices_show", "/home/finfocus/.finfocus/prices/aws.json"),
    ],
)
def test_wide_keeps_every_column_whole(name, whole, monkeypatch):
    narrow = render(name, 80, monkeypatch)
    assert whole not in narrow and "…" in narrow
    wide = render(name, 80, monkeypatch, ["--wide"])
    assert "…" not in wide
    lines = wide.splitlines()
    header = next(i for i, x in enumerate(lines) if x.rstrip().endswith(("file", "source")))
    at = len(lines[header].rstrip()) - len(
        lines[header].split()[-1]
    )  # the last column, folded over lines
    assert whole.replace(" ", "") in "".join(x[at:].strip() for x in lines[header + 2 :]).replace(
        " ", ""
    )


@pytest.mark.parametrize(
    "name", ["budget_alerts", "catalog_show", "forecast_month_end", "budget_list"]
)
def test_dates_are_never_cut_and_wide_shows_them(name, monkeypatch):
    for width in WIDTHS:
        text = render(
            name, width, monkeypatch
        )  # render() checks every date cell is whole or left out
        assert "…" not in "".join(t for t in text.split() if t[:2] == "20")
    text = render(name, 100, monkeypatch, ["--wide"])
    assert "not shown for width" not in text
    assert "2026-12-01" in text or "2026-01-01" in text


def test_a_missing_snapshot_fails_unless_asked_to_write_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FINFOCUS_UPDATE_SNAPSHOTS", raising=False)
    missing = tmp_path / "new_80.txt"
    with pytest.raises(AssertionError, match="FINFOCUS_UPDATE_SNAPSHOTS=1"):
        check_snapshot(missing, "table")
    assert not missing.exists()
    monkeypatch.setenv("FINFOCUS_UPDATE_SNAPSHOTS", "1")
    check_snapshot(missing, "table")
    assert missing.read_text() == "table"


def test_the_cut_check_catches_a_cut_date():
    columns = [output.Column("period", kind="date"), output.Column("budget", kind="key")]
    cells = [["2026-12-01 to 2027-01-01", "prod"]]
    with pytest.raises(AssertionError):
        assert_nothing_whole_was_cut(
            "period                  budget\n2026-12-01 to 2027-01…  prod",
            [(columns, cells, False)],
        )
    with pytest.raises(AssertionError):  # cropped without an ellipsis
        assert_nothing_whole_was_cut(
            "period      budget\n2026-12-01 to 20", [(columns, cells, False)]
        )
    assert_nothing_whole_was_cut(
        "budget\nprod\nnot shown for width: period (--wide shows them)", [(columns, cells, False)]
    )


def test_columns_that_cannot_be_cut_leave_whole_when_nothing_else_gives_way(monkeypatch):
    recorder = Console(
        width=60,
        record=True,
        color_system=None,
        force_terminal=False,
        file=open(os.devnull, "w"),  # noqa: SIM115 - output discarded, recorded
    )
    monkeypatch.setattr(output, "console", recorder)
    columns = [
        output.Column("budget", kind="key"),
        output.Column("from", kind="date"),
        output.Column("to", kind="date"),
        output.Column("raised", kind="date"),
        output.Column("spend", kind="money"),
    ]
    row = ["prod", "2026-12-01", "2027-01-01", "2026-12-02 06:00:00Z", "2,717.03 USD"]
    output.render_table(columns, [row])
    text = recorder.export_text()
    assert all(len(line) <= 60 for line in text.splitlines()) and "…" not in text
    assert_nothing_whole_was_cut(text, [(columns, [row], False)])
    assert "2,717.03 USD" in text and "not shown for width: raised" in " ".join(text.split())
