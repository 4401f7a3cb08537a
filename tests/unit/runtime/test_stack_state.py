"""State file, pid identity (stale pids are never signalled), masking, status shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from finfocus.embedded.stack import cleanup, public_status
from finfocus.embedded.state import ProcessRef, StateFile, mask_url, supervisor_alive, terminate


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_process_ref_names_a_live_process(sleeper):
    ref = ProcessRef.of(sleeper.pid)
    assert ref is not None and ref.alive()


def test_reused_pid_is_not_taken_for_the_recorded_process(sleeper):
    real = ProcessRef.of(sleeper.pid)
    # same pid, other creation time: what a pid reused after a crash looks like
    stale = ProcessRef(sleeper.pid, real.create_time - 3600)
    assert not stale.alive()
    assert terminate(stale, timeout=1) is False
    assert sleeper.poll() is None, "an unrelated process with a reused pid was signalled"


def test_terminate_stops_the_recorded_process(sleeper):
    assert terminate(ProcessRef.of(sleeper.pid), timeout=5) is True
    assert sleeper.wait(5) is not None


def test_cleanup_of_a_stale_state_spares_reused_pids_and_external_services(tmp_path: Path, sleeper):
    real = ProcessRef.of(sleeper.pid)
    state = {
        "supervisor": {"pid": sleeper.pid, "create_time": real.create_time - 10},
        "kafka_owned": False,  # FINFOCUS_KAFKA_BOOTSTRAP cluster: never ours to stop
        "kafka": real.to_dict(),
        "postgres_owned": False,
        "services": {
            "ingest": {"state": "running", "pid": sleeper.pid, "create_time": real.create_time + 5}
        },
    }
    sf = StateFile(tmp_path / "run" / "stack.json")
    sf.write(state)
    assert not supervisor_alive(state)
    assert cleanup(state, tmp_path) == []
    assert sleeper.poll() is None
    assert sf.read() == {}


def test_cleanup_stops_services_left_behind_by_a_dead_supervisor(tmp_path: Path, sleeper):
    ref = ProcessRef.of(sleeper.pid)
    state = {
        "supervisor": {"pid": 999999, "create_time": 1.0},
        "services": {"pricing": {"state": "running", **ref.to_dict()}},
    }
    assert cleanup(state, tmp_path) == ["service pricing"]
    assert sleeper.wait(5) is not None


def test_state_file_is_written_atomically_and_private(tmp_path: Path):
    sf = StateFile(tmp_path / "run" / "stack.json")
    sf.write({"kafka_bootstrap": "127.0.0.1:1"})
    assert json.loads(sf.path.read_text()) == {"kafka_bootstrap": "127.0.0.1:1"}
    assert sf.path.stat().st_mode & 0o077 == 0
    assert list(sf.path.parent.iterdir()) == [sf.path]


def test_database_password_is_masked():
    assert (
        mask_url("postgresql://app:s3cr3t@db.example:5432/finfocus")
        == "postgresql://app:***@db.example:5432/finfocus"
    )
    assert (
        mask_url("postgresql://postgres@127.0.0.1:5433/finfocus")
        == "postgresql://postgres@127.0.0.1:5433/finfocus"
    )
    assert mask_url(None) is None


def test_status_json_has_exactly_the_contract_keys():
    state = {
        "kafka_bootstrap": "127.0.0.1:9092",
        "database_url": "postgresql://u:pw@h:5432/d",
        "supervisor": {"pid": 1},
        "services": {"ingest": {"state": "running", "pid": 5}, "pricing": {"state": "failed"}},
    }
    out = public_status(state)
    assert out == {
        "kafka_bootstrap": "127.0.0.1:9092",
        "database_url": "postgresql://u:***@h:5432/d",
        "api_url": None,  # the api service's address once `up` started it
        "services": {"ingest": "running", "pricing": "failed"},
    }
    assert "pw" not in json.dumps(out)
