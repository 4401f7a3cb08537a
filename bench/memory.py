"""Memory of the embedded stack: RSS of every FinFocus process, idle and through an import.

    .venv/bin/python bench/memory.py [--rows 100000] [--five-million] [--resources 500]
        [--days 60] [--idle-seconds 30] [--analysis-seconds 90] [--interval 1.0] [--json FILE]

`finfocus up --detach` in a fresh temporary FINFOCUS_HOME (embedded broker and PostgreSQL),
then three phases, sampling every --interval seconds with psutil:
- idle: the stack once every service reported ready and sat still for --idle-seconds;
- import: `finfocus ingest import FILE` of --rows synthetic FOCUS rows (--resources resources
  over the --days days before today, BilledCost given) until every service keeping a copy of
  the lines (pricing, anomaly, forecast, remediation) has stored them all;
- analysis: --analysis-seconds more, while the detectors, the forecast refit and remediation's
  periodic analysis run on the new data.
`--five-million` is `--rows 5000000` (the target run of the memory goal: every service under
300 MB idle and under 600 MB at any point).

Processes sampled (read from the supervisor's run/stack.json on every sample, so a restarted
service is followed): each service's `finfocus serve` process, its child processes on their
own line (e.g. the forecast fit worker), the supervisor, the `finfocus ingest` client while it
runs, the broker, and PostgreSQL (the postmaster and its backends as one line: the sum of
their PSS, so shared buffers are counted once). RSS is what the memory goal is stated in; the
services' lines are RSS.

Prints, per process, the idle median and peak, the peak during the import and during the
analysis, and the overall peak; with --json, also every sample.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
SERVICE_NAMES = ("ingest", "pricing", "anomaly", "forecast", "remediation", "api")
COPIES = ("pricing", "anomaly", "forecast", "remediation")
IDLE_TARGET_MB, PEAK_TARGET_MB = 300, 600


# -- the stack ------------------------------------------------------------------------------
class Stack:
    """`finfocus up --detach` in a private FINFOCUS_HOME, driven through the command line."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
        self.env["FINFOCUS_HOME"] = str(home)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "finfocus.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "finfocus.cli", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.home / "run" / "stack.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def up(self) -> None:
        started = self.cli("up", "--detach", "--timeout", "240", timeout=300)
        if started.returncode != 0:
            raise RuntimeError(f"finfocus up failed: {started.stdout}\n{started.stderr}")

    def down(self) -> None:
        try:
            self.cli("down", timeout=120)
        except subprocess.TimeoutExpired:
            print("finfocus down did not finish in 120 s", file=sys.stderr)

    def counts(self) -> dict[str, int] | None:
        """Rows in each copy's cost_lines, or None while the database does not answer."""
        import asyncio

        import asyncpg

        state = self.state()
        url, path = state.get("database_url"), state.get("database_password_file")
        if not url:
            return None
        password = Path(path).read_text().strip() if path else None

        async def fetch() -> dict[str, int]:
            conn = await asyncpg.connect(url, password=password, timeout=5)
            try:
                out = {}
                for name in COPIES:
                    try:
                        out[name] = await conn.fetchval(f"SELECT count(*) FROM {name}.cost_lines")
                    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
                        out[name] = 0
                return out
            finally:
                await conn.close()

        try:
            return asyncio.run(fetch())
        except Exception:  # noqa: BLE001 - PostgreSQL restarting: no reading this time
            return None


# -- sampling -------------------------------------------------------------------------------
def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(p: psutil.Process) -> int:
    try:
        return p.memory_info().rss
    except psutil.Error:
        return 0


def _pss(p: psutil.Process) -> int:
    try:
        return p.memory_full_info().pss
    except (psutil.Error, AttributeError):
        return _rss(p)


def _child_label(p: psutil.Process) -> str:
    """`worker` for a multiprocessing child, the module or script of another Python child
    (e.g. a plugin), else the executable's name."""
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "child"
    if not cmd:
        return "child"
    text = " ".join(cmd)
    if "multiprocessing" in text or "spawn_main" in text:
        return "worker"
    if Path(cmd[0]).name.startswith("python") and len(cmd) > 1:
        if "-m" in cmd[:-1]:
            return cmd[cmd.index("-m") + 1].rsplit(".", 1)[-1]
        return Path(cmd[1]).name
    return Path(cmd[0]).name


def sample(stack: Stack, extra: dict[str, int]) -> dict[str, float]:
    """MB per process line at this moment."""
    state = stack.state()
    out: dict[str, float] = {}
    for name, entry in (state.get("services") or {}).items():
        pid = (entry or {}).get("pid")
        if not pid:
            continue
        procs = _tree(pid)
        if procs:
            out[name] = _rss(procs[0]) / MB
        for child in procs[1:]:
            label = f"{name} {_child_label(child)}"
            out[label] = out.get(label, 0.0) + _rss(child) / MB
    sup = (state.get("supervisor") or {}).get("pid")
    if sup:
        out["supervisor"] = _rss(psutil.Process(sup)) / MB if psutil.pid_exists(sup) else 0.0
    kafka = (state.get("kafka") or {}).get("pid")
    if kafka and psutil.pid_exists(kafka):
        out["broker"] = _rss(psutil.Process(kafka)) / MB
    pg = (state.get("postgres") or {}).get("pid")
    if pg:
        procs = _tree(pg)
        if procs:
            out["postgres (PSS, all backends)"] = sum(_pss(p) for p in procs) / MB
    for label, pid in extra.items():
        procs = _tree(pid)
        if procs:
            out[label] = sum(_rss(p) for p in procs) / MB
    return out


class Sampler(threading.Thread):
    def __init__(self, stack: Stack, interval: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.interval = stack, interval
        self.phase = "starting"
        self.extra: dict[str, int] = {}
        self.samples: list[tuple[float, str, dict[str, float]]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            t0 = time.monotonic()
            self.samples.append((time.time(), self.phase, sample(self.stack, dict(self.extra))))
            self._done.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def stop(self) -> None:
        self._done.set()
        self.join()


# -- input ----------------------------------------------------------------------------------
def write_rows(path: Path, rows: int, resources: int, days: int, seed: int = 19) -> None:
    """`rows` FOCUS rows, streamed to CSV: `resources` resources, each with some line items
    every day of the `days` days before today; BilledCost given (no pricing lookups)."""
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days)
    services = ["Compute", "Storage", "Database", "Network", "Functions"]
    fields = [
        "ProviderName",
        "BillingAccountId",
        "SubAccountId",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "BillingCurrency",
        "ServiceName",
        "RegionId",
        "ResourceId",
        "ResourceType",
        "ChargeCategory",
        "BilledCost",
    ]
    level = [rng.lognormvariate(1.0, 1.0) for _ in range(resources)]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(fields)
        for i in range(rows):
            r = i % resources
            day = first + timedelta(days=(i // resources) % days)
            hour = (i // (resources * days)) % 24
            start = f"{day.isoformat()}T{hour:02d}:00:00Z"
            end = f"{day.isoformat()}T{hour:02d}:59:59Z"
            cost = max(level[r] * rng.uniform(0.7, 1.3), 0.0)
            writer.writerow(
                [
                    ("AWS", "Microsoft", "Google Cloud")[r % 3],
                    "acct-mem",
                    f"sub-{r % 7}",
                    start,
                    end,
                    "USD",
                    services[r % len(services)],
                    f"region-{r % 4}",
                    f"mem-{r:06d}",
                    f"type-{r % 9}",
                    "Usage",
                    f"{cost:.6f}",
                ]
            )


# -- report ---------------------------------------------------------------------------------
def summarise(
    samples: list[tuple[float, str, dict[str, float]]],
) -> dict[str, dict[str, float | None]]:
    names: list[str] = []
    for _, _, s in samples:
        names += [n for n in s if n not in names]
    out = {}
    for name in names:
        by_phase: dict[str, list[float]] = {}
        for _, phase, s in samples:
            if name in s:
                by_phase.setdefault(phase, []).append(s[name])
        idle = by_phase.get("idle", [])
        out[name] = {
            "idle_median": statistics.median(idle) if idle else None,
            "idle_peak": max(idle) if idle else None,
            "import_peak": max(by_phase.get("import", []), default=None),
            "analysis_peak": max(by_phase.get("analysis", []), default=None),
            "peak": max((v for vs in by_phase.values() for v in vs), default=None),
        }
    return out


def _order(name: str) -> tuple[int, str]:
    base = name.split(" ")[0]
    return (SERVICE_NAMES.index(base) if base in SERVICE_NAMES else len(SERVICE_NAMES), name)


def print_report(summary: dict[str, dict[str, float | None]], rows: int) -> None:
    def cell(v: float | None) -> str:
        return f"{v:,.0f}" if v is not None else "-"

    print(
        f"RSS in MB ({rows:,} rows imported); services' targets: idle < {IDLE_TARGET_MB}, "
        f"any time < {PEAK_TARGET_MB}"
    )
    print(
        f"  {'process':<34}{'idle med':>9}{'idle max':>9}{'import':>9}{'analysis':>9}{'peak':>9}  target"
    )
    for name in sorted(summary, key=_order):
        s = summary[name]
        verdict = ""
        if name in SERVICE_NAMES:
            ok_idle = s["idle_peak"] is None or s["idle_peak"] < IDLE_TARGET_MB
            ok_peak = s["peak"] is None or s["peak"] < PEAK_TARGET_MB
            verdict = (
                ("idle ok" if ok_idle else "IDLE OVER")
                + ", "
                + ("peak ok" if ok_peak else "PEAK OVER")
            )
        print(
            f"  {name[:33]:<34}{cell(s['idle_median']):>9}{cell(s['idle_peak']):>9}{cell(s['import_peak']):>9}"
            f"{cell(s['analysis_peak']):>9}{cell(s['peak']):>9}  {verdict}"
        )
    services = [summary[n] for n in SERVICE_NAMES if n in summary]
    idle_total = sum(s["idle_median"] or 0.0 for s in services)
    print(f"  the six services idle together (medians): {idle_total:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows imported")
    parser.add_argument(
        "--five-million", action="store_true", help="import 5,000,000 rows (the memory goal's run)"
    )
    parser.add_argument("--resources", type=int, default=500, help="distinct resources in the rows")
    parser.add_argument(
        "--days", type=int, default=60, help="days of history the rows cover (ending yesterday)"
    )
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--analysis-seconds", type=float, default=90.0)
    parser.add_argument(
        "--settle-timeout", type=float, default=1800.0, help="seconds the copies may take"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--idle-only", action="store_true", help="measure the idle stack only")
    parser.add_argument("--json", type=Path, help="write the summary and every sample here")
    args = parser.parse_args()
    rows = 5_000_000 if args.five_million else args.rows

    with tempfile.TemporaryDirectory(prefix="finfocus-mem-") as tmp:
        stack = Stack(Path(tmp) / "home")
        sampler = Sampler(stack, args.interval)
        t0 = time.monotonic()
        stack.up()
        print(f"stack up in {time.monotonic() - t0:.0f}s", file=sys.stderr)
        sampler.start()
        try:
            time.sleep(5)  # the first seconds after ready: connections, first refit of nothing
            sampler.phase = "idle"
            time.sleep(args.idle_seconds)
            if not args.idle_only:
                path = Path(tmp) / "rows.csv"
                sampler.phase = "writing file"
                write_rows(path, rows, args.resources, args.days)
                sampler.phase = "import"
                t1 = time.monotonic()
                proc = stack.spawn(
                    "ingest", "import", str(path), "--format", "focus", "--output", "json"
                )
                sampler.extra["finfocus ingest (client)"] = proc.pid
                out, _ = proc.communicate()
                sampler.extra.clear()
                if proc.returncode != 0:
                    print(f"ingest exit {proc.returncode}: {out[-2000:]}", file=sys.stderr)
                counts: dict[str, int] | None = None
                while time.monotonic() - t1 < args.settle_timeout:
                    counts = stack.counts()
                    if counts and all(counts[c] >= rows for c in COPIES):
                        break
                    # count(*) of four tables is a scan each: every 2 s at 100k rows, every
                    # 20 s at 5M, so the polling does not become a load of its own
                    time.sleep(max(2.0, rows / 250_000))
                print(
                    f"import stored in every copy after {time.monotonic() - t1:.0f}s: {counts}",
                    file=sys.stderr,
                )
                sampler.phase = "analysis"
                time.sleep(args.analysis_seconds)
                state = stack.state()
                rotations = state.get("broker_rotations") or []
                print(
                    f"broker log rotations: {json.dumps(rotations)}; a rotation waiting: "
                    f"{json.dumps(state.get('broker_rotation_waiting'))}",
                    file=sys.stderr,
                )
        finally:
            try:
                sampler.stop()
            finally:
                stack.down()
    summary = summarise(sampler.samples)
    print_report(summary, 0 if args.idle_only else rows)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "summary": summary,
                    "samples": [{"t": t, "phase": p, "mb": s} for t, p, s in sampler.samples],
                }
            )
        )


if __name__ == "__main__":
    main()
