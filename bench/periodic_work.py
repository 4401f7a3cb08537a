"""The periodic work of forecast and remediation with 1 and 2 instances: how many refits and
analyses a batch of rows causes, which instance ran them, and the CPU it all took.

    nice -n 10 .venv/bin/python bench/periodic_work.py [--rows 20000] [--sequence 1,1,2,2,1,1,2]

It runs the code of the checkout it is in (the stack's services too): to measure an earlier
version, copy it into an export of that version (`git archive REV | tar -x -C DIR`) and run it
there with this venv's python.

`bench/scale.py` counts CPU over each run's window, which ends when the last copy is stored:
a refit (debounced 10 s) or an analysis (every 15 s) falls inside or outside it by chance.
This one waits for the work the rows cause: per step of `--sequence` (instances of forecast
and remediation, `finfocus scale`), it publishes `--rows` billed rows on raw-billing (an
account of their own), waits until both services stored them, then for a refit that started
after that and an analysis that finished after it, then until 20 s pass without another; it
prints the CPU milliseconds per row of all the processes of each service (the fit worker
included), per service and per process, and the refits and analyses recorded meanwhile, with
the instance that ran each where the tables say (forecast.refits.instance,
remediation.analysis_runs). The first step is a warm-up (first fits, caches). The stack runs
pricing, forecast and remediation on a fresh database on 127.0.0.1:5432, dropped afterwards.
Each step adds 20,000 series (one per resource), so later refits read more: compare steps
next to each other. The machine may be shared: say so with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale import (  # noqa: E402
    ScaleStack,
    billed,
    create_database,
    drop_database,
    publish,
)

SERVICES = ("forecast", "remediation")


def cpu(stack: ScaleStack) -> dict[tuple[str, int], float]:
    """(service, pid) -> user + system CPU seconds of every instance and its children."""
    import psutil

    found = {}
    for name, entry in (stack.state().get("services") or {}).items():
        service = entry.get("service") or name
        if service not in SERVICES or not entry.get("pid"):
            continue
        try:
            top = psutil.Process(entry["pid"])
            processes = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            found[(service, process.pid)] = times.user + times.system
    return found


async def _query(url: str, sql: str, *args: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        return None  # a version without the table or column
    finally:
        await conn.close()


def query(url: str, sql: str, *args: Any) -> Any:
    return asyncio.run(_query(url, sql, *args))


def stored(url: str, account: str) -> tuple[int, int]:
    rows = query(
        url,
        "SELECT (SELECT count(*) FROM forecast.cost_lines WHERE record_id LIKE $1),"
        " (SELECT count(*) FROM remediation.cost_lines WHERE record_id LIKE $1)",
        f"{account}-%",
    )
    return rows[0][0], rows[0][1]


def marks(url: str) -> tuple[int, int]:
    """The last refit and analysis ids (0 where none, or no analysis table)."""
    refit = query(url, "SELECT coalesce(max(refit_id), 0) FROM forecast.refits")[0][0]
    runs = query(url, "SELECT coalesce(max(run_id), 0) FROM remediation.analysis_runs")
    return refit, (runs[0][0] if runs else 0)


def work_after(url: str, moment: float) -> bool:
    refits = query(
        url,
        "SELECT count(*) FROM forecast.refits WHERE extract(epoch FROM started_at) > $1",
        moment,
    )[0][0]
    runs = query(
        url,
        "SELECT count(*) FROM remediation.analysis_runs WHERE extract(epoch FROM finished_at) > $1",
        moment,
    )
    return bool(refits) and (runs is None or bool(runs[0][0]))


def one_step(stack: ScaleStack, url: str, step: int, instances: int, rows_n: int) -> dict:
    rows = billed(rows_n, f"work-{step}-{instances}", seed=step)
    refit0, run0 = marks(url)
    before = cpu(stack)
    started = time.time()
    asyncio.run(publish(stack.bootstrap, rows.records))
    while min(stored(url, rows.account)) < rows_n:
        time.sleep(0.5)
    done = time.time()
    while time.time() - done < 400 and not work_after(url, done):
        time.sleep(1)
    last, quiet = None, time.time()
    while time.time() - quiet < 20:
        now = marks(url)
        if now != last:
            last, quiet = now, time.time()
        time.sleep(1)
    after = cpu(stack)
    per_service: dict[str, float] = {}
    per_process = {}
    for (service, pid), seconds in after.items():
        used = seconds - before.get((service, pid), 0.0)
        per_service[service] = per_service.get(service, 0.0) + used
        per_process[f"{service}:{pid}"] = round(1000 * used / rows_n, 3)
    refits = query(
        url, "SELECT instance, series_total FROM forecast.refits WHERE refit_id > $1", refit0
    ) or query(url, "SELECT NULL, series_total FROM forecast.refits WHERE refit_id > $1", refit0)
    runs = query(url, "SELECT instance FROM remediation.analysis_runs WHERE run_id > $1", run0)
    return {
        "step": step,
        "instances": instances,
        "stored_s": round(done - started, 1),
        "cpu_ms_per_row": {k: round(1000 * v / rows_n, 3) for k, v in sorted(per_service.items())},
        "per_process": per_process,
        "refits": len(refits),
        "refit_instances": sorted({str(r[0]) for r in refits}),
        "series": [r[1] for r in refits],
        "analyses": None if runs is None else len(runs),
        "analysis_instances": None if runs is None else sorted({r[0] for r in runs}),
        "load": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows per step")
    parser.add_argument(
        "--sequence", default="1,1,2,2,1,1,2", help="instances of each service per step"
    )
    args = parser.parse_args()
    steps = [int(x) for x in args.sequence.split(",")]

    url = create_database("ff_work")
    base = Path(tempfile.mkdtemp(prefix="finfocus-work-"))
    base.chmod(0o755)
    stack = ScaleStack(base, url, env={"PYTHONPATH": str(ROOT)})
    try:
        stack.up(only="pricing,forecast,remediation")
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        for step, instances in enumerate(steps):
            stack.scale(f"forecast={instances},remediation={instances}")
            time.sleep(8)  # the new instance is up and its groups settled
            print(json.dumps(one_step(stack, url, step, instances, args.rows)), flush=True)
    finally:
        stack.down()
        shutil.rmtree(base, ignore_errors=True)
        drop_database(url)


if __name__ == "__main__":
    main()
