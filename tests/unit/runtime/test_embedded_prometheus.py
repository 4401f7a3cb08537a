"""The embedded Prometheus's generated files and `status`'s metrics URLs (no process started)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from finfocus.embedded import prometheus
from finfocus.embedded.health import health_file, service_health
from finfocus.embedded.state import ProcessRef


def test_scrape_config_honours_the_series_service_label_and_reads_file_sd_targets(tmp_path: Path):
    rules = tmp_path / "rules.yml"
    doc = prometheus.config(tmp_path / "targets.json", [rules])
    job = doc["scrape_configs"][0]
    assert job["honor_labels"] is True
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "targets.json")]
    assert doc["rule_files"] == [str(rules)]


def test_targets_are_one_per_service_labelled_with_its_name():
    assert prometheus.targets(
        {"pricing": "http://127.0.0.1:4001", "anomaly": "http://127.0.0.1:4002"}
    ) == [
        {"targets": ["127.0.0.1:4002"], "labels": {"job": "finfocus", "service": "anomaly"}},
        {"targets": ["127.0.0.1:4001"], "labels": {"job": "finfocus", "service": "pricing"}},
    ]


def test_a_dead_service_keeps_its_last_target_so_up_reads_zero(tmp_path: Path):
    p = prometheus.EmbeddedPrometheus(tmp_path, "prometheus", tmp_path / "p.log")
    p.run_dir.mkdir(parents=True)
    p.watch({"pricing": "http://127.0.0.1:4001", "ingest": "http://127.0.0.1:4003"})
    p.watch({"ingest": "http://127.0.0.1:4004"})  # pricing died; ingest restarted elsewhere
    written = json.loads(p.targets_file.read_text())
    assert {e["labels"]["service"]: e["targets"] for e in written} == {
        "ingest": ["127.0.0.1:4004"],
        "pricing": ["127.0.0.1:4001"],
    }


def test_rules_that_promtool_refuses_are_left_out(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(prometheus, "REPO_RULES", tmp_path / "absent.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [{name: x, rules: [{alert: A, expr: 'sum(('}]}]\n")
    good = tmp_path / "good.yml"
    good.write_text("groups: [{name: x, rules: [{alert: A, expr: 'up == 0'}]}]\n")
    chosen = prometheus.rule_files(f"{bad}{os.pathsep}{good}")
    if prometheus.shutil.which("promtool"):
        assert chosen == [good.resolve()]
    else:
        assert chosen == [bad.resolve(), good.resolve()]


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("FINFOCUS_PROMETHEUS", "off")
    assert prometheus.binary() is None


def test_status_lists_each_service_metrics_url_from_its_health_file(tmp_path: Path):
    pid = os.getpid()
    path = health_file(tmp_path, "pricing", pid)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "service": "pricing",
                "pid": pid,
                "updated_at": None,
                "state": "running",
                "consumers": [],
                "metrics_url": "http://127.0.0.1:4001",
            }
        )
    )
    me = ProcessRef.of(pid)
    services = {
        "pricing": {"state": "running", "pid": pid, "create_time": me.create_time},
        "anomaly": {"state": "starting", "pid": None},
    }
    assert service_health(tmp_path, services)["metrics"] == {"pricing": "http://127.0.0.1:4001"}
    assert prometheus.metrics_urls(tmp_path, {"pricing": pid, "anomaly": None}) == {
        "pricing": "http://127.0.0.1:4001"
    }
