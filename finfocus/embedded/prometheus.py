"""A real Prometheus beside the embedded stack, when one is installed (`prometheus` on PATH).

`finfocus up` runs it as one more supervised child: data in `FINFOCUS_HOME/prometheus`, its
configuration generated in `FINFOCUS_HOME/run/prometheus`, listening on a free loopback port.
Targets come from the services' health files (each names its `metrics_url`) through a file_sd
file the supervisor rewrites when they change; a service that died keeps its last target, so
`up{service=...}` says 0 instead of the series vanishing. Rules: `deploy/prometheus/rules.yml`
when present (and valid by `promtool check rules`, else left out with a warning, so a broken
rules file never stops the stack), plus any file in `FINFOCUS_PROMETHEUS_RULES`
(colon-separated). `FINFOCUS_PROMETHEUS=off` runs the stack without it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from finfocus.embedded.ports import free_port, wait_for_port

logger = logging.getLogger(__name__)

REPO_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
SCRAPE_INTERVAL = "5s"
#: seconds between restarts of a Prometheus that keeps dying
RESTART_BACKOFF = 5.0


def binary() -> str | None:
    """The `prometheus` executable on PATH, or None (also when FINFOCUS_PROMETHEUS=off)."""
    if os.environ.get("FINFOCUS_PROMETHEUS", "").strip().lower() in ("0", "off", "false", "no"):
        return None
    return shutil.which("prometheus")


def rule_files(extra: str | None = None) -> list[Path]:
    """Rule files to load: the repository's, and `extra` (colon-separated), those that pass
    `promtool check rules` when promtool is installed."""
    candidates = [REPO_RULES] + [Path(p) for p in (extra or "").split(os.pathsep) if p]
    promtool = shutil.which("promtool")
    chosen = []
    for path in candidates:
        if not path.is_file():
            continue
        if promtool:
            check = subprocess.run(
                [promtool, "check", "rules", str(path)], capture_output=True, text=True
            )
            if check.returncode != 0:
                logger.warning(
                    "prometheus rules %s left out: %s",
                    path,
                    (check.stdout + check.stderr).strip()[-500:],
                )
                continue
        chosen.append(path.resolve())
    return chosen


def config(targets_file: Path, rules: list[Path]) -> dict[str, Any]:
    """The scrape configuration (written as JSON, which is YAML)."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(p) for p in rules],
        "scrape_configs": [
            {
                "job_name": "finfocus",
                # the series' own `service` label wins over the target's
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "2s"}],
            }
        ],
    }


def targets(urls: dict[str, str]) -> list[dict[str, Any]]:
    """file_sd entries: one target per service, labelled with its name."""
    out = []
    for service, url in sorted(urls.items()):
        host = url.split("://", 1)[-1].rstrip("/")
        out.append({"targets": [host], "labels": {"job": "finfocus", "service": service}})
    return out


class EmbeddedPrometheus:
    """One Prometheus process and its generated files under FINFOCUS_HOME."""

    def __init__(self, home: Path, executable: str, log: Path) -> None:
        self.home = home
        self.executable = executable
        self.log = log
        self.data_dir = home / "prometheus"
        self.run_dir = home / "run" / "prometheus"
        self.targets_file = self.run_dir / "targets.json"
        self.config_file = self.run_dir / "prometheus.yml"
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self._urls: dict[str, str] = {}
        self._written: str | None = None
        self._last_start = 0.0

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None

    def start(self, timeout: float = 30.0) -> None:
        """Write the configuration and start the process; returns once it listens."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write_targets(force=True)
        rules = rule_files(os.environ.get("FINFOCUS_PROMETHEUS_RULES"))
        self.config_file.write_text(json.dumps(config(self.targets_file, rules), indent=2))
        self.port = self.port or free_port()
        self._last_start = time.monotonic()
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.executable,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=7d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for_port("127.0.0.1", self.port, timeout)
        except TimeoutError:
            self.stop()
            raise
        logger.info("embedded Prometheus on %s (%d rule file(s))", self.url, len(rules))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def watch(self, urls: dict[str, str]) -> None:
        """Keep the targets current and the process running (called by the stack's tick)."""
        for service, url in urls.items():
            if url:
                self._urls[service] = url  # a dead service keeps its last target: up == 0
        self._write_targets()
        if (
            self.process is not None
            and not self.alive()
            and time.monotonic() - self._last_start > RESTART_BACKOFF
        ):
            logger.warning(
                "embedded Prometheus exited with %s; starting it again", self.process.returncode
            )
            try:
                self.start()
            except Exception as exc:  # noqa: BLE001 - metrics are optional; the stack goes on
                logger.error("cannot restart the embedded Prometheus: %s", exc)

    def _write_targets(self, force: bool = False) -> None:
        text = json.dumps(targets(self._urls), indent=2)
        if text == self._written and not force:
            return
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.targets_file)  # file_sd must never read half a file
        self._written = text

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def metrics_urls(home: Path, pids: dict[str, int | None]) -> dict[str, str]:
    """service -> the `metrics_url` its current process wrote into its health file."""
    from finfocus.embedded.health import read_health, service_of

    urls = {}
    for service, pid in pids.items():  # an instance name (`pricing-2`) is a target of its own
        report = read_health(home, service_of(service), pid) if pid else None
        if report and isinstance(report.get("metrics_url"), str):
            urls[service] = report["metrics_url"]
    return urls
