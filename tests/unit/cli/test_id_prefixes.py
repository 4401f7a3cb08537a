"""Every command that takes an id accepts a unique prefix of one, like git: an ambiguous prefix
is a usage error (exit 2) listing the candidates, an unknown id a failure (exit 1)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import typer
from typer.testing import CliRunner

import finfocus.cli.output as output
from finfocus.cli import app
from finfocus.cli.output import resolve_prefix

CMD_A = "cmd-7f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c"
CMD_B = "cmd-7f3e99990b9a8f7e6d5c4b3a2f1e0d9c"
REC_A = "rec-5d41402abc4b2a76b9719d911017c592"
REC_B = "rec-5d41999abc4b2a76b9719d911017c592"
ANM_A = "anm-112c9d0e4f5a6b7c8d9e0f1a2b3c4d5e"
ANM_B = "anm-112c7777e4f5a6b7c8d9e0f1a2b3c4d5e"


def test_resolve_prefix_exact_unique_ambiguous_unknown(capsys):
    assert resolve_prefix("command", CMD_A, [CMD_A, CMD_A + "0"]) == CMD_A  # the id itself wins
    assert resolve_prefix("command", "cmd-7f3e2d", [CMD_A]) == CMD_A
    with pytest.raises(typer.Exit) as ambiguous:
        resolve_prefix("command", "cmd-7f3e", [CMD_A, CMD_B])
    assert ambiguous.value.exit_code == 2
    err = capsys.readouterr().err
    assert CMD_A in err and CMD_B in err and "ambiguous" in err
    with pytest.raises(typer.Exit) as unknown:
        resolve_prefix("command", "cmd-0000", [])
    assert unknown.value.exit_code == 1
    assert "no command cmd-0000" in capsys.readouterr().err


async def _return(value):
    return value


@pytest.fixture()
def cli(monkeypatch):
    monkeypatch.setenv(
        "FINFOCUS_DATABASE_URL", "postgresql://unused@127.0.0.1:1/none"
    )  # never connected
    monkeypatch.delenv("FINFOCUS_API_URL", raising=False)

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args))

    return invoke


COMMAND_CALLS = [
    ["remediation", "approve"],
    ["remediation", "reject"],
    ["remediation", "undo"],
    ["remediation", "show"],
]
RECOMMENDATION_CALLS = [
    ["recommendations", "dismiss", "--reason", "r"],
    ["recommendations", "snooze", "--until", "2027-01-01", "--reason", "r"],
    ["recommendations", "show"],
]


@pytest.mark.parametrize("call", COMMAND_CALLS, ids=lambda c: " ".join(c[:2]))
def test_command_ids_ambiguous_exit_2_unknown_exit_1(call, cli, monkeypatch):
    import services.remediation.cli as rem

    monkeypatch.setattr(
        rem,
        "_command_ids",
        lambda prefix: _return([c for c in (CMD_A, CMD_B) if c.startswith(prefix)]),
    )
    result = cli(*call[:2], "cmd-7f3e", *call[2:])
    assert result.exit_code == 2, result.output
    assert CMD_A in result.output and CMD_B in result.output and "ambiguous" in result.output
    result = cli(*call[:2], "cmd-0000", *call[2:])
    assert result.exit_code == 1, result.output
    assert "no command cmd-0000" in result.output


@pytest.mark.parametrize("call", RECOMMENDATION_CALLS, ids=lambda c: " ".join(c[:2]))
def test_recommendation_ids_ambiguous_exit_2_unknown_exit_1(call, cli, monkeypatch):
    import services.remediation.cli as rem

    monkeypatch.setattr(
        rem,
        "_recommendation_ids",
        lambda prefix: _return([r for r in (REC_A, REC_B) if r.startswith(prefix)]),
    )
    result = cli(*call[:2], "rec-5d41", *call[2:])
    assert result.exit_code == 2, result.output
    assert REC_A in result.output and REC_B in result.output and "ambiguous" in result.output
    result = cli(*call[:2], "rec-0000", *call[2:])
    assert result.exit_code == 1, result.output
    assert "no recommendation rec-0000" in result.output


def test_a_unique_prefix_reaches_the_decision_as_the_full_id(cli, monkeypatch):
    import services.remediation.cli as rem

    sent = []
    monkeypatch.setattr(
        rem, "_command_ids", lambda prefix: _return([CMD_A] if CMD_A.startswith(prefix) else [])
    )
    monkeypatch.setattr(
        rem,
        "_recommendation_ids",
        lambda prefix: _return([REC_A] if REC_A.startswith(prefix) else []),
    )

    async def decided(command_id, decision, reason, timeout=15.0):
        sent.append((decision, command_id))
        return True, f"command {command_id} done"

    async def state(rec_id, new_state, reason, until, timeout=15.0):
        sent.append((new_state, rec_id))
        return True

    monkeypatch.setattr(rem, "_send_command_decision", decided)
    monkeypatch.setattr(rem, "_set_state", state)
    for args in (
        ["remediation", "approve", "cmd-7f3e2"],
        ["remediation", "reject", "cmd-7f3e2"],
        ["remediation", "undo", "cmd-7f3e2"],
        ["recommendations", "dismiss", "rec-5d4140", "--reason", "r"],
        ["recommendations", "snooze", "rec-5d4140", "--until", "2027-01-01", "--reason", "r"],
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    assert sent == [
        ("approve", CMD_A),
        ("reject", CMD_A),
        ("undo", CMD_A),
        ("dismissed", REC_A),
        ("snoozed", REC_A),
    ]


class FakeAnomalyConn:
    """`finfocus.db.reader(...)` for the anomaly commands: the view's ids, one record, cost lines."""

    def __init__(self, ids, record=None, series=()):
        self.ids, self.record, self.series = ids, record, list(series)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def fetch(self, sql, *params):
        if "pricing.v_cost_lines" in sql:
            return [{"day": d, "cost": c} for d, c in self.series]
        prefix = params[0]
        return [
            {"anomaly_id": a}
            for a in sorted(self.ids, key=lambda a: (a != prefix, a))
            if a.startswith(prefix)
        ]

    async def fetchrow(self, sql, full):
        if self.record is None or full != self.record["anomaly_id"]:
            return None
        return {
            "record": self.record,
            "feedback": None,
            "feedback_note": None,
            "feedback_actor": None,
        }


@pytest.mark.parametrize(
    "call",
    [["anomalies", "show"], ["anomalies", "feedback", "{id}", "no"]],
    ids=["show", "feedback"],
)
def test_anomaly_ids_ambiguous_exit_2_unknown_exit_1(call, cli, monkeypatch):
    import finfocus.db

    monkeypatch.setattr(finfocus.db, "reader", lambda *a, **k: FakeAnomalyConn([ANM_A, ANM_B]))
    for prefix, code, words in (
        ("anm-112c", 2, [ANM_A, ANM_B, "ambiguous"]),
        ("anm-0000", 1, ["no anomaly anm-0000"]),
    ):
        args = [a.replace("{id}", prefix) for a in call] if "{id}" in call else [*call, prefix]
        result = cli(*args)
        assert result.exit_code == code, result.output
        assert all(w in result.output for w in words), result.output


def test_anomalies_show_accepts_a_prefix_and_draws_the_series_as_a_sparkline(cli, monkeypatch):
    from datetime import date, timedelta

    from rich.console import Console

    import finfocus.db

    record = {
        "anomaly_id": ANM_A,
        "detected_at": "2026-12-01T06:00:00Z",
        "window_start": "2026-11-28T00:00:00Z",
        "window_end": "2026-12-01T00:00:00Z",
        "dimension": {"ProviderName": "AWS", "ServiceName": "EC2"},
        "expected_cost": "60.36",
        "actual_cost": "2992.58",
        "impact": "2932.22",
        "impact_pct": "4857.8",
        "currency": "USD",
        "severity": "critical",
        "score": 41.2,
        "detector": "robust-seasonal",
        "root_causes": [],
        "status": "open",
    }
    first = date(2026, 11, 7)  # three weeks before the window
    series = [
        (first + timedelta(d), Decimal("20") if d < 21 else Decimal("972.66")) for d in range(24)
    ]
    monkeypatch.setattr(
        finfocus.db, "reader", lambda *a, **k: FakeAnomalyConn([ANM_A, ANM_B], record, series)
    )
    recorder = Console(width=100, record=True, color_system=None, force_terminal=False)
    monkeypatch.setattr(output, "console", recorder)
    result = cli("anomalies", "show", "anm-112c9")
    assert result.exit_code == 0, result.output
    text = recorder.export_text()
    assert f"Anomaly {ANM_A}" in text
    line = next(x for x in text.splitlines() if x.startswith("series"))
    assert (
        "▁" * 21 + "███" in line
    )  # 21 quiet days, then the 3-day spike; days after it not billed yet
    assert "2026-11-07 to 2026-11-30" in line and "20.00 to 972.66" in line


def test_the_series_query_binds_every_value_and_refuses_unknown_dimensions():
    from datetime import date

    from schemas.reads.series import daily_query, fill_days

    sql, params = daily_query(
        {"ProviderName": "AWS", "tag:team": "x'; DROP TABLE y"},
        date(2026, 11, 1),
        date(2026, 12, 1),
    )
    assert "DROP" not in sql and params[2:] == ["AWS", "team", "x'; DROP TABLE y"]
    assert daily_query({"Unknown": "v"}, date(2026, 11, 1), date(2026, 12, 1)) is None
    filled = fill_days([(date(2026, 11, 2), Decimal(5))], date(2026, 11, 1), date(2026, 11, 4))
    assert [c for _, c in filled] == [0, 5, 0]


def test_remediation_and_recommendation_show_print_the_whole_text(cli, monkeypatch):
    from rich.console import Console

    import services.remediation.cli as rem

    long = "Idle for 14 days: CPU under 2 % and no network; " * 4 + "END."
    monkeypatch.setattr(rem, "_command_ids", lambda prefix: _return([CMD_A]))
    monkeypatch.setattr(
        rem,
        "_list_commands",
        lambda status: _return(
            [
                {
                    "command_id": CMD_A,
                    "status": "executed",
                    "action": "stop-instance",
                    "mode": "execute",
                    "target": {"resource_id": "i-1"},
                    "expected_monthly_savings": "10.005",
                    "reason": {"text": long},
                    "result": {"status": "ok", "dry_run": False},
                    "issued_at": datetime(2026, 12, 1, tzinfo=UTC),
                }
            ]
        ),
    )
    monkeypatch.setattr(rem, "_recommendation_ids", lambda prefix: _return([REC_A]))
    monkeypatch.setattr(
        rem,
        "_recommendations",
        lambda *a: _return(
            [
                {
                    "recommendation_id": REC_A,
                    "type": "idle-instance",
                    "resource_id": "i-1",
                    "account_id": "1",
                    "estimated_monthly_savings": Decimal("10.005"),
                    "currency": "USD",
                    "action": "stop-instance",
                    "state": "open",
                    "rationale": long,
                }
            ]
        ),
    )
    for args, title in (
        (["remediation", "show", "cmd-7f"], f"Remediation command {CMD_A}"),
        (["recommendations", "show", "rec-5d"], f"Recommendation {REC_A}"),
    ):
        recorder = Console(width=80, record=True, color_system=None, force_terminal=False)
        monkeypatch.setattr(output, "console", recorder)
        result = cli(*args)
        assert result.exit_code == 0, result.output
        text = recorder.export_text()
        assert title in text and "…" not in text and "10.01" in text
        assert all(len(x) <= 80 for x in text.splitlines())
        assert (
            " ".join(text.split()).count("Idle for 14 days") == 4 and "END." in text
        )  # folded, whole
    # JSON: the same record the list prints
    result = cli("recommendations", "show", "rec-5d", "-o", "json")
    assert (
        result.exit_code == 0
        and '"recommendation_id": "rec-5d41402abc4b2a76b9719d911017c592"' in result.output
    )


def test_remediation_audit_and_ingest_show_take_prefixes_too(cli, monkeypatch):
    import services.ingest.cli.ingest as ingest
    import services.remediation.cli as rem

    monkeypatch.setattr(
        rem,
        "_command_ids",
        lambda prefix: _return([c for c in (CMD_A, CMD_B) if c.startswith(prefix)]),
    )
    result = cli("remediation", "audit", "cmd-7f3e")
    assert result.exit_code == 2 and CMD_A in result.output and CMD_B in result.output
    asked = []
    monkeypatch.setattr(rem, "_audit", lambda command_id: asked.append(command_id) or _return([]))
    assert cli("remediation", "audit", "cmd-7f3e2", "-o", "json").exit_code == 0 and asked == [
        CMD_A
    ]

    jobs = ["job-3f2a9c1e", "job-3f2a0000"]
    monkeypatch.setattr(
        ingest, "_job_ids", lambda prefix: _return([j for j in jobs if j.startswith(prefix)])
    )
    result = cli("ingest", "show", "job-3f2a")
    assert result.exit_code == 2 and all(j in result.output for j in jobs)
    result = cli("ingest", "show", "job-9")
    assert result.exit_code == 1 and "no import job job-9" in result.output
    monkeypatch.setattr(
        ingest, "_jobs", lambda limit, job_id: _return([{"job_id": job_id, "status": "done"}])
    )
    result = cli("ingest", "show", "job-3f2a9", "-o", "json")
    assert result.exit_code == 0 and '"job_id": "job-3f2a9c1e"' in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["cost", "actual"],
        ["cost", "projected"],
        ["fx", "show"],
        ["prices", "show"],
        ["catalog", "show"],
        ["plugin", "list"],
        ["ingest", "jobs"],
        ["budget", "list"],
        ["budget", "alerts"],
        ["forecast", "show"],
        ["forecast", "month-end"],
        ["anomalies", "list"],
        ["anomalies", "monitors", "list"],
        ["remediation", "list"],
        ["remediation", "audit"],
        ["playbooks", "list"],
        ["recommendations", "list"],
        ["savings", "report"],
    ],
)
def test_every_table_command_has_wide(command, cli):
    result = cli(*command, "--help")
    assert result.exit_code == 0 and "--wide" in result.output, result.output
