"""`finfocus status` (table) says what the broker's log rotations did, from the stack state."""

from __future__ import annotations

from finfocus.cli import stack as stack_cli
from finfocus.cli.output import OutputFormat


def test_status_shows_the_last_rotation(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FINFOCUS_HOME", str(tmp_path))
    real = stack_cli.status_document
    monkeypatch.setattr(
        stack_cli, "status_document", lambda state: real(state, with_recovery=False)
    )
    monkeypatch.setattr(stack_cli.console, "width", 200)
    state = {
        "kafka_bootstrap": "127.0.0.1:9092",
        "database_url": "postgresql://x@127.0.0.1/db",
        "services": {},
        "broker_epoch": 1,
        "broker_rotations": [
            {"at": "2026-12-03T06:00:00+00:00", "rss_mb_before": 1100, "deferred": "busy"},
            {
                "at": "2026-12-03T07:00:00+00:00",
                "rss_mb_before": 1090,
                "rss_mb_after": 140,
                "kept": 100000,
                "dropped": 900000,
                "seconds": 14.2,
            },
        ],
    }
    stack_cli._print_status(state, OutputFormat.TABLE)
    out = capsys.readouterr().out
    assert (
        "broker log rotated 2 time(s), last at 2026-12-03T07:00:00+00:00 (1090 -> 140 MB): "
        "kept 100,000 unread record(s), dropped 900,000 consumed"
    ) in " ".join(out.split())
