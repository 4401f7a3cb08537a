"""`finfocus status` reads the services' health files (hand-written here as the runtime
writes them): consumer positions and lag, and `degraded` with a reason instead of `running`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from typer.testing import CliRunner

from finfocus.embedded.health import DEGRADED, health_file, service_health
from finfocus.embedded.state import ProcessRef, StateFile

NOW = 1_800_000_000.0


def _consumer(partition: int, **over) -> dict:
    return {
        "group": "finfocus-pricing",
        "topic": "raw-billing",
        "partition": partition,
        "committed": 10,
        "log_end": 12,
        "lag": 2,
        "last_error": None,
        "last_error_at": None,
        "retrying": False,
        "stalled": False,
        **over,
    }


def _write(home: Path, service: str, pid: int, updated_at, consumers, **over) -> None:
    path = health_file(home, service, pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "service": service,
                "pid": pid,
                "updated_at": updated_at,
                "state": "running",
                "reason": None,
                "consumers": consumers,
                **over,
            }
        )
    )


def _services(**pids) -> dict:
    me = ProcessRef.of(os.getpid())
    return {
        name: {
            "state": "running",
            "pid": pid,
            "create_time": me.create_time if pid == me.pid else 0,
        }
        for name, pid in pids.items()
    }


def test_consumer_rows_show_offsets_lag_and_errors(tmp_path: Path):
    pid = os.getpid()
    _write(
        tmp_path, "pricing", pid, NOW - 1, [_consumer(0), _consumer(1, committed=None, lag=None)]
    )
    out = service_health(tmp_path, _services(pricing=pid), now=NOW)
    assert out["services"] == {"pricing": "running"} and out["degraded_reasons"] == {}
    assert out["consumers"][0] == {
        "service": "pricing",
        "instance": "pricing",
        "pid": pid,
        **_consumer(0),
    }
    assert out["consumers"][1]["committed"] is None


def test_a_stalled_consumer_makes_the_service_degraded_with_the_reason(tmp_path: Path):
    pid = os.getpid()
    stalled = _consumer(
        3,
        stalled=True,
        last_error="cannot store cost line: boom",
        last_error_at="2027-01-15T08:00:00Z",
    )
    _write(tmp_path, "pricing", pid, "2027-01-15T08:00:00+00:00", [_consumer(0), stalled])
    moment = time.mktime(time.strptime("2027-01-15 08:00:05", "%Y-%m-%d %H:%M:%S")) - time.timezone
    out = service_health(tmp_path, _services(pricing=pid), now=moment)
    assert out["services"]["pricing"] == DEGRADED
    reason = out["degraded_reasons"]["pricing"]
    assert "raw-billing[3] stalled at offset 10" in reason and "boom" in reason
    assert out["consumers"][1]["stalled"] is True


def test_a_retrying_consumer_is_degraded_too(tmp_path: Path):
    pid = os.getpid()
    _write(
        tmp_path,
        "anomaly",
        pid,
        NOW,
        [_consumer(0, retrying=True, last_error="connection refused")],
    )
    out = service_health(tmp_path, _services(anomaly=pid), now=NOW)
    assert out["services"]["anomaly"] == DEGRADED
    assert "retrying: connection refused" in out["degraded_reasons"]["anomaly"]


def test_a_stale_health_file_of_a_live_process_is_degraded(tmp_path: Path):
    pid = os.getpid()
    _write(tmp_path, "forecast", pid, NOW - 16, [_consumer(0, lag=0)])
    out = service_health(tmp_path, _services(forecast=pid), now=NOW)
    assert out["services"]["forecast"] == DEGRADED
    assert "stale" in out["degraded_reasons"]["forecast"]
    _write(tmp_path, "forecast", pid, NOW - 14, [_consumer(0, lag=0)])
    assert (
        service_health(tmp_path, _services(forecast=pid), now=NOW)["services"]["forecast"]
        == "running"
    )


def test_the_service_own_degraded_state_and_other_supervisor_states_are_kept(tmp_path: Path):
    pid = os.getpid()
    _write(tmp_path, "ingest", pid, NOW, [], state="degraded", reason="database unreachable")
    services = {**_services(ingest=pid), "pricing": {"state": "restarting", "pid": None}}
    out = service_health(tmp_path, services, now=NOW)
    assert out["services"] == {"ingest": DEGRADED, "pricing": "restarting"}
    assert out["degraded_reasons"] == {"ingest": "database unreachable"}


def test_a_file_of_another_pid_or_no_file_changes_nothing(tmp_path: Path):
    pid = os.getpid()
    _write(tmp_path, "pricing", pid + 1, NOW - 100, [_consumer(0, stalled=True)])
    out = service_health(tmp_path, _services(pricing=pid), now=NOW)
    assert out == {
        "services": {"pricing": "running"},
        "degraded_reasons": {},
        "consumers": [],
        "metrics": {},
    }


def test_status_json_keeps_the_contract_keys_and_adds_consumers(tmp_path: Path, monkeypatch):
    from finfocus.cli import app

    home = tmp_path / "home"
    me = ProcessRef.of(os.getpid())
    StateFile(home / "run" / "stack.json").write(
        {
            "supervisor": me.to_dict(),
            "kafka_bootstrap": "127.0.0.1:1",
            "kafka_owned": True,
            "database_url": None,
            "broker_epoch": 3,
            "services": {"pricing": {"state": "running", **me.to_dict()}},
        }
    )
    _write(home, "pricing", me.pid, time.time(), [_consumer(0, stalled=True, last_error="bad")])
    monkeypatch.setenv("FINFOCUS_HOME", str(home))
    result = CliRunner().invoke(app, ["status", "--output", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {"kafka_bootstrap", "database_url", "services"} <= set(doc)
    assert doc["services"] == {"pricing": "degraded"}
    assert doc["consumers"][0]["stalled"] is True and doc["consumers"][0]["lag"] == 2
    assert doc["broker"]["epoch"] == 3 and doc["broker"]["restarts"] == []
    assert "stalled" in doc["degraded_reasons"]["pricing"]
