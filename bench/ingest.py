"""Ingest benchmark: normalise-only rows/s per format on one core, and a 1M-row CUR end to end.

    .venv/bin/python bench/ingest.py [--rows 1000000] [--repeat 3] [--skip-e2e]
        [--focus-converters /tmp/fc-venv/bin/python]

Synthetic files are generated under a temporary directory (never committed). Each
normalise run is a separate process pinned to one core (taskset, POLARS_MAX_THREADS=1),
timed from start to exit and reporting its own peak RSS; each measurement runs --repeat
times and the median is printed. focus_converters (PyPI `focus-converter` 1.0.0, in a
virtualenv of its own: it pins old polars and pyarrow) runs on the same CUR files twice:
free to use every core, its default, and pinned to one core like FinFocus. The end-to-end run starts an embedded broker, uses the PostgreSQL at
FINFOCUS_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres), runs the pricing
service as its own process and times `finfocus ingest FILE --wait` (file to priced rows
stored), reporting the ingest process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

SERVICES = ["AmazonEC2", "AmazonS3", "AmazonRDS", "AWSLambda", "AmazonCloudWatch", "AmazonDynamoDB"]
NAMES = {
    "AmazonEC2": "Amazon Elastic Compute Cloud",
    "AmazonS3": "Amazon Simple Storage Service",
    "AmazonRDS": "Amazon Relational Database Service",
    "AWSLambda": "AWS Lambda",
    "AmazonCloudWatch": "AmazonCloudWatch",
    "AmazonDynamoDB": "Amazon DynamoDB",
}
TYPES = ["Usage"] * 14 + [
    "DiscountedUsage",
    "SavingsPlanCoveredUsage",
    "SavingsPlanNegation",
    "Tax",
    "Credit",
    "Fee",
]


def synthetic_cur(rows: int, seed: int = 7) -> pl.DataFrame:
    """Legacy CUR columns (the commonly used ~40), realistic value shapes, deterministic."""
    frame = pl.DataFrame({"i": pl.int_range(0, rows, eager=True)}).with_columns(
        (pl.col("i") * 2654435761 % 1000003 + seed).alias("h")
    )
    start = pl.lit(datetime(2024, 9, 1)) + pl.duration(hours=pl.col("i") % 720)
    f = frame.select(
        pl.format("li{}", pl.col("i")).alias("identity/LineItemId"),
        pl.lit("2024-09-01T00:00:00Z/2024-10-01T00:00:00Z").alias("identity/TimeInterval"),
        pl.lit("EUINGB24-001").alias("bill/InvoiceId"),
        pl.lit("AWS").alias("bill/BillingEntity"),
        pl.lit("Anniversary").alias("bill/BillType"),
        pl.lit("012345678901").alias("bill/PayerAccountId"),
        pl.lit("2024-09-01T00:00:00Z").alias("bill/BillingPeriodStartDate"),
        pl.lit("2024-10-01T00:00:00Z").alias("bill/BillingPeriodEndDate"),
        pl.format("0{}", 10000000000 + pl.col("h") % 40).alias("lineItem/UsageAccountId"),
        pl.lit(pl.Series(TYPES)).gather(pl.col("h") % len(TYPES)).alias("lineItem/LineItemType"),
        start.dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("lineItem/UsageStartDate"),
        (start + pl.duration(hours=1))
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        .alias("lineItem/UsageEndDate"),
        pl.lit(pl.Series(SERVICES))
        .gather(pl.col("h") % len(SERVICES))
        .alias("lineItem/ProductCode"),
        pl.format("BoxUsage:m5.{}xlarge", pl.col("h") % 8).alias("lineItem/UsageType"),
        pl.lit("RunInstances").alias("lineItem/Operation"),
        pl.format("us-east-1{}", pl.lit(pl.Series(list("abcdef"))).gather(pl.col("h") % 6)).alias(
            "lineItem/AvailabilityZone"
        ),
        pl.format("i-{}", pl.col("h") * 7919 % 100000).alias("lineItem/ResourceId"),
        (pl.col("h") % 1000 / 1000).round(6).cast(pl.Utf8).alias("lineItem/UsageAmount"),
        pl.lit("USD").alias("lineItem/CurrencyCode"),
        pl.lit("0.0960000000").alias("lineItem/UnblendedRate"),
        pl.format("{}.{}", pl.col("h") % 7, (pl.col("h") % 9973).cast(pl.Utf8).str.zfill(10)).alias(
            "lineItem/UnblendedCost"
        ),
        pl.format("{}.{}", pl.col("h") % 7, (pl.col("h") % 9973).cast(pl.Utf8).str.zfill(10)).alias(
            "lineItem/BlendedCost"
        ),
        pl.format("$0.096 per On Demand Linux m5.large Instance Hour {}", pl.col("h") % 50).alias(
            "lineItem/LineItemDescription"
        ),
        pl.lit(None, pl.Utf8).alias("lineItem/TaxType"),
        pl.lit(pl.Series([NAMES[s] for s in SERVICES]))
        .gather(pl.col("h") % len(SERVICES))
        .alias("product/ProductName"),
        pl.lit("us-east-1").alias("product/region"),
        pl.format("m5.{}xlarge", pl.col("h") % 8).alias("product/instanceType"),
        pl.format("SKU{}", pl.col("h") % 500).alias("product/sku"),
        pl.format("{}.{}", pl.col("h") % 9, (pl.col("h") % 9973).cast(pl.Utf8).str.zfill(10)).alias(
            "pricing/publicOnDemandCost"
        ),
        pl.lit("0.096").alias("pricing/publicOnDemandRate"),
        pl.lit("Hrs").alias("pricing/unit"),
        pl.lit("OnDemand").alias("pricing/term"),
        pl.when(pl.col("h") % 20 == 14)
        .then(pl.lit("arn:aws:ec2:us-east-1:012345678901:reserved-instances/r1"))
        .alias("reservation/ReservationARN"),
        pl.when(pl.col("h") % 20 == 14)
        .then(pl.lit("0.0500000000"))
        .alias("reservation/EffectiveCost"),
        pl.when(pl.col("h") % 20 >= 15)
        .then(pl.lit("arn:aws:savingsplans::012345678901:savingsplan/s1"))
        .alias("savingsPlan/SavingsPlanARN"),
        pl.when(pl.col("h") % 20 == 15)
        .then(pl.lit("0.0400000000"))
        .alias("savingsPlan/SavingsPlanEffectiveCost"),
        pl.lit("Amazon Web Services, Inc.").alias("bill/InvoicingEntity"),
        pl.lit("Amazon Web Services, Inc.").alias("lineItem/LegalEntity"),
        pl.format("{}.JRTCKXETXF.6YS6EN2CT7", pl.col("h") % 500).alias("pricing/RateCode"),
        pl.format("{}", pl.col("h") % 100000).alias("pricing/RateId"),
        pl.lit(None, pl.Utf8).alias("reservation/TotalReservedUnits"),
        pl.lit(None, pl.Utf8).alias("reservation/UnusedAmortizedUpfrontFeeForBillingPeriod"),
        pl.lit(None, pl.Utf8).alias("reservation/UnusedRecurringFee"),
        pl.lit(None, pl.Utf8).alias("savingsPlan/TotalCommitmentToDate"),
        pl.lit(None, pl.Utf8).alias("savingsPlan/UsedCommitment"),
        pl.lit(pl.Series(["core", "data", "web", None]))
        .gather(pl.col("h") % 4)
        .alias("resourceTags/user:team"),
        pl.lit(pl.Series(["prod", "dev", None]))
        .gather(pl.col("h") % 3)
        .alias("resourceTags/user:env"),
    )
    return f


def make_files(directory: Path, rows: int) -> dict[str, Path]:
    """Synthetic CUR legacy CSV, CUR 2.0 Parquet, FOCUS CSV, Azure CSV and GCP JSON lines."""
    from services.ingest.formats.aws_cur import snake

    cur = synthetic_cur(rows)
    files = {"aws-cur legacy CSV": directory / "cur.csv"}
    cur.write_csv(files["aws-cur legacy CSV"])
    tags = [c for c in cur.columns if c.startswith("resourceTags/")]
    cur2 = cur.drop(tags).rename({c: snake(c) for c in cur.columns if c not in tags})
    cur2 = cur2.rename({"product_region": "product_region_code"}).with_columns(
        pl.when(cur["resourceTags/user:team"].is_not_null())
        .then(pl.format('{{"user_team": "{}"}}', cur["resourceTags/user:team"]))
        .alias("resource_tags")
    )
    # CUR 2.0 Parquet is typed: timestamps and double-precision amounts
    cur2 = cur2.with_columns(
        [
            pl.col(c).str.strptime(pl.Datetime("ms", "UTC"), "%Y-%m-%dT%H:%M:%SZ")
            for c in (
                "line_item_usage_start_date",
                "line_item_usage_end_date",
                "bill_billing_period_start_date",
                "bill_billing_period_end_date",
            )
        ]
        + [
            pl.col(c).cast(pl.Float64)
            for c in (
                "line_item_unblended_cost",
                "line_item_blended_cost",
                "line_item_usage_amount",
                "line_item_unblended_rate",
                "pricing_public_on_demand_cost",
                "pricing_public_on_demand_rate",
                "reservation_effective_cost",
                "savings_plan_savings_plan_effective_cost",
            )
        ]
    )
    (directory / "cur2").mkdir(exist_ok=True)
    files["aws-cur 2.0 Parquet"] = directory / "cur2" / "part-0.parquet"
    cur2.write_parquet(files["aws-cur 2.0 Parquet"], row_group_size=65536)
    files["azure CSV"] = directory / "azure.csv"
    azure_frame(rows).write_csv(files["azure CSV"])
    files["gcp JSON lines"] = directory / "gcp.jsonl"
    write_gcp_jsonl(files["gcp JSON lines"], rows)
    sample = ROOT.parent / "shared" / "data" / "focus-samples" / "FOCUS-1.0" / "focus_sample.csv"
    if sample.exists():
        files["focus CSV"] = directory / "focus.csv"
        focus_frame(sample, rows).write_csv(files["focus CSV"])
    return files


def azure_frame(rows: int) -> pl.DataFrame:
    """The EA actual-cost fixture's rows repeated, each with its own resource and day."""
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "ingest"))
    from make_fixtures import azure_ea_rows  # type: ignore[import-not-found]

    base = pl.DataFrame(azure_ea_rows())
    reps = -(-rows // base.height)
    frame = pl.concat([base] * reps).head(rows).with_row_index("n")
    return frame.with_columns(
        pl.format("{}-{}", pl.col("ResourceId"), pl.col("n")).alias("ResourceId"),
        pl.format("09/{}/2024", (pl.col("n") % 30 + 1).cast(pl.Utf8).str.zfill(2)).alias("Date"),
    ).drop("n")


def write_gcp_jsonl(path: Path, rows: int) -> None:
    """The GCP fixture's rows repeated with distinct hours and resources, written in chunks."""
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "ingest"))
    import orjson
    from make_fixtures import gcp_rows  # type: ignore[import-not-found]

    base = gcp_rows()
    with path.open("wb") as fh:
        for n in range(rows):
            row = dict(base[n % len(base)])
            hour = n % 720
            row["usage_start_time"] = f"2024-09-{hour // 24 + 1:02d}T{hour % 24:02d}:00:00Z"
            row["usage_end_time"] = f"2024-09-{hour // 24 + 1:02d}T{hour % 24:02d}:59:59Z"
            row["resource"] = {
                "name": f"vm-{n}",
                "global_name": f"//compute.googleapis.com/projects/shop/zones/b/instances/vm-{n}",
            }
            fh.write(orjson.dumps(row) + b"\n")


def focus_frame(sample: Path, rows: int) -> pl.DataFrame:
    """The real FOCUS 1.0 sample repeated, each copy with its own `Id`."""
    base = pl.read_csv(sample, infer_schema_length=0)
    reps = -(-rows // base.height)
    frame = pl.concat([base] * reps).head(rows).with_row_index("n")
    return frame.with_columns(pl.col("n").cast(pl.Utf8).alias("Id")).drop("n")


NORMALISE_CHILD = """
import os, resource, sys, time, json
sys.path.insert(0, {root!r})
from pathlib import Path
from services.ingest.domain import JobTally, RecordBuilder
from services.ingest.formats import detect, normalise, projection
from services.ingest.reader import Source
from services.ingest.native import available, keep_freed_heap
keep_freed_heap()  # as the importer does
src = Source(Path({path!r}))
fmt = detect(src.header())
tally = JobTally(); builder = RecordBuilder(file=src.path.name, job_id="bench", version=1)
t0 = time.perf_counter(); c0 = time.process_time(); first = 1; out_bytes = 0; records_cpu = 0.0
for batch in src.batches(projection(fmt, src.header())):
    checked = normalise(fmt, batch, first)
    c1 = time.process_time()
    built = builder.build(checked, tally)
    records_cpu += time.process_time() - c1
    first += batch.height
    out_bytes += sum(map(len, built.values))
elapsed = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(json.dumps({{"format": fmt, "rows": tally.rows_read, "native": available(), "rejected": tally.rows_rejected,
    "seconds": elapsed, "cpu_seconds": time.process_time() - c0, "records_cpu_seconds": records_cpu,
    "peak_rss_mb": int(hwm[0].split()[1]) / 1024,
    "totals": {{k: str(v) for k, v in tally.totals.items()}}}}))
"""


ONE_CORE_ENV = {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "ARROW_NUM_THREADS": "1"}


def one_core(cmd: list[str]) -> list[str]:
    """`cmd` pinned to the first core (taskset, where the system has it)."""
    return ["taskset", "-c", "0", *cmd] if shutil_which("taskset") else cmd


def normalise_only(path: Path) -> dict:
    """FinFocus's normalisation of `path` in its own process on one core: the in-process
    figures the child prints, plus the whole process's wall and CPU time (start-up and
    imports included, as focus_converters is timed)."""
    code = NORMALISE_CHILD.format(root=str(ROOT), path=str(path))
    before = os.times()
    t0 = time.perf_counter()
    out = subprocess.run(
        one_core([sys.executable, "-u", "-c", code]),
        env={**os.environ, **ONE_CORE_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    process_seconds = time.perf_counter() - t0
    after = os.times()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {**result, "process_seconds": process_seconds, "process_cpu_seconds": cpu}


def median_run(runs: list[dict], key: str) -> dict:
    """The run with the median `key` (the middle one of an odd count)."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def focus_converters(
    python: str,
    provider: str,
    path: Path,
    out_dir: Path,
    timeout: float = 900,
    pinned: bool = False,
) -> dict:
    """focus_converters on the same file, in its own virtualenv (whole-process time and peak
    RSS); with `pinned`, on one core as FinFocus is measured; killed after `timeout` seconds
    (it hangs forever after some errors)."""
    import shutil

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cmd = [
        python,
        "-m",
        "focus_converter.main",
        "convert",
        "--provider",
        provider,
        "--data-path",
        str(path if path.suffix == ".csv" else path.parent),
        "--data-format",
        "csv" if path.suffix == ".csv" else "parquet",
        "--export-path",
        str(out_dir),
    ]
    if path.suffix != ".csv":
        cmd += ["--parquet-data-format", "dataset"]
    import psutil

    t0 = time.perf_counter()
    log = open(out_dir / "focus_converters.log", "w+")  # noqa: SIM115 - the converter writes it, read back at the end
    env = {**os.environ, **ONE_CORE_ENV} if pinned else None
    proc = subprocess.Popen(
        one_core(cmd) if pinned else cmd, stdout=log, stderr=log, text=True, env=env
    )
    peak = 0
    killed = False
    parent = psutil.Process(proc.pid)
    status = None
    while status is None:
        pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status = code
            break
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        if time.perf_counter() - t0 > timeout:
            killed = True
            for p in [*parent.children(recursive=True), parent]:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            break
        time.sleep(0.2)
    if status is None:
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    ok = proc.returncode == 0
    log.seek(0)
    err = log.read()[-400:]
    elapsed = time.perf_counter() - t0
    rss = peak / 2**20
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "ok": ok,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "peak_rss_mb": rss,
        "error": None if ok else err,
        "killed": killed,
        "exit_code": proc.returncode,
    }


def converted_facts(out_dir: Path) -> dict:
    """What focus_converters wrote: rows, CommitmentDiscountId filled, the account ids."""
    parts = sorted(out_dir.glob("*.parquet"))
    frame = pl.scan_parquet(parts)
    schema = frame.collect_schema()
    facts = (
        frame.select(
            pl.len().alias("rows"),
            pl.col("CommitmentDiscountId").is_not_null().sum().alias("commitment_ids"),
            pl.col("SubAccountId").first().cast(pl.Utf8).alias("sub_account"),
            pl.col("BillingAccountId").first().cast(pl.Utf8).alias("billing_account"),
        )
        .collect()
        .row(0, named=True)
    )
    return {**facts, "sub_account_dtype": str(schema["SubAccountId"])}


def finfocus_facts(path: Path, rows: int = 50_000) -> dict:
    """The same facts of FinFocus's records for the file's first `rows` rows (not timed), and
    how many of those rows carry a reservation or savings plan ARN in the file."""
    import orjson

    from services.ingest.domain import JobTally, RecordBuilder
    from services.ingest.formats import detect, normalise, projection
    from services.ingest.reader import Source

    src = Source(path)
    fmt = detect(src.header())
    builder, tally, first = RecordBuilder(file=path.name, job_id="facts", version=1), JobTally(), 1
    facts = {
        "rows": 0,
        "commitment_ids": 0,
        "arns_in_file": 0,
        "sub_account": None,
        "billing_account": None,
    }
    for batch in src.batches(projection(fmt, src.header())):
        arns = [
            c
            for c in batch.columns
            if c.lower().replace("_", "").endswith(("reservationarn", "savingsplanarn"))
        ]
        facts["arns_in_file"] += batch.select(
            pl.any_horizontal([pl.col(c).is_not_null() for c in arns]).sum()
        ).item()
        built = builder.build(normalise(fmt, batch, first), tally)
        first += batch.height
        records = [orjson.loads(v) for v in built.values]
        facts["rows"] += len(records)
        facts["commitment_ids"] += sum("CommitmentDiscountId" in r for r in records)
        facts["sub_account"] = facts["sub_account"] or records[0].get("SubAccountId")
        facts["billing_account"] = facts["billing_account"] or records[0]["BillingAccountId"]
        if facts["rows"] >= rows:
            break
    return facts


def error_behaviour(python: str | None, work: Path, timeout: float = 30) -> None:
    """A file that is no CUR (two columns): FinFocus's import refuses it with a message and
    exit code 1; focus_converters (aws-cur provider) prints its error and never exits."""
    broken = work / "broken" / "not-a-cur.csv"
    broken.parent.mkdir(exist_ok=True)
    broken.write_text("a,b\n1,2\n")
    code = NORMALISE_CHILD.format(root=str(ROOT), path=str(broken))
    t0 = time.perf_counter()
    mine = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    message = (mine.stderr.strip().splitlines() or [""])[-1][:110]
    print(
        f"\na file that is no CUR ({broken.name}):\n  FinFocus          exit {mine.returncode} after "
        f"{time.perf_counter() - t0:.1f}s: {message}"
    )
    if python:
        r = focus_converters(python, "aws-cur", broken, work / "broken" / "fc-out", timeout=timeout)
        what = f"no exit after {timeout:.0f}s, killed" if r["killed"] else f"exit {r['exit_code']}"
        print(
            f"  focus_converters  {what}: {(r['error'] or '').strip().splitlines()[-1][:110] if r['error'] else ''}"
        )


def end_to_end(path: Path, rows: int, timeout: float, wait: bool = True) -> dict:
    """`finfocus ingest FILE --wait` against an embedded broker, PostgreSQL and the pricing service;
    with `wait=False`, the import alone (file -> raw-billing, job recorded), no pricing."""
    import asyncio
    import uuid

    import asyncpg

    from finfocus.embedded.kafka import start_kafka

    admin_url = os.environ.get("FINFOCUS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ff_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    tmp = Path(tempfile.mkdtemp(prefix="ff-bench-"))
    broker = start_kafka(tmp / "tansu.log")
    env = {
        **os.environ,
        "FINFOCUS_HOME": str(tmp / "home"),
        "FINFOCUS_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FINFOCUS_DATABASE_URL": admin_url.rsplit("/", 1)[0] + f"/{name}",
        "FINFOCUS_KAFKA_SESSION_TIMEOUT_MS": "1500",
        "FINFOCUS_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    }
    pricing = subprocess.Popen(
        [sys.executable, "-m", "finfocus.cli", "serve", "pricing"] if wait else ["true"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "pricing.log", "w"),  # noqa: SIM115 - the service's for its life
    )
    wait_args = ["--wait", "--wait-timeout", str(timeout)] if wait else []
    try:
        time.sleep(4 if wait else 0)  # migrations and the consumer group join
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import resource, sys, runpy; sys.argv=['finfocus', *sys.argv[1:]];\n"
                "try:\n    from finfocus.cli import main; main()\n"
                "except SystemExit as e:\n"
                "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
                "    sys.stderr.write('PEAK_RSS_KB=%s\\n' % hwm[0].split()[1]); raise",
                "ingest",
                str(path),
                *wait_args,
                "--output",
                "json",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - t0
        summary = (
            json.loads(proc.stdout)
            if proc.stdout.strip().startswith("{")
            else {"raw": proc.stdout[-500:]}
        )
        rss = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")]
        return {
            "exit_code": proc.returncode,
            "rows": summary.get("rows_published"),
            "stored_rows": summary.get("stored_rows"),
            "reconciled": summary.get("reconciliation", {}).get("reconciled"),
            "seconds": elapsed,
            "rows_per_s": (
                summary.get("stored_rows") if wait else summary.get("rows_published") or 0
            )
            / elapsed,
            "ingest_peak_rss_mb": int(rss[-1].split("=")[1]) / 1024 if rss else None,
            "stderr_tail": None if proc.returncode == 0 else proc.stderr[-800:],
        }
    finally:
        pricing.terminate()
        try:
            pricing.wait(20)
        except subprocess.TimeoutExpired:
            pricing.kill()
        broker.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="rows of the CUR file (normalise and end to end)",
    )
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each normalise measurement (medians printed)"
    )
    parser.add_argument("--skip-normalise", action="store_true")
    parser.add_argument("--e2e-timeout", type=float, default=1800)
    parser.add_argument(
        "--focus-converters", help="python of a virtualenv with focus-converter installed"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--import-only",
        action="store_true",
        help="only the legacy CUR CSV: `finfocus ingest FILE` (no pricing), rows/s and peak RSS",
    )
    args = parser.parse_args()
    if args.import_only:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="ff-ingest-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        path = work / "cur.csv"
        if not path.exists():
            synthetic_cur(args.rows).write_csv(path)
        print(
            f"import only: {args.rows:,}-row CUR legacy CSV ({path.stat().st_size / 1e6:,.0f} MB), "
            "file -> raw-billing, job recorded (finfocus ingest FILE):",
            flush=True,
        )
        r = end_to_end(path, args.rows, args.e2e_timeout, wait=False)
        print(
            f"  {r['rows_per_s']:,.0f} rows/s   {r['seconds']:.1f}s   published {r['rows']}   "
            f"ingest peak RSS {r['ingest_peak_rss_mb']:.0f} MB   exit {r['exit_code']}"
        )
        if r["stderr_tail"]:
            print(r["stderr_tail"])
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ff-ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    marker = work / f".generated-{args.rows}"
    if marker.exists():
        files = json.loads(marker.read_text())
        files = {k: Path(v) for k, v in files.items()}
        print(f"reusing {args.rows:,}-row files under {work}")
    else:
        files = make_files(work, args.rows)
        marker.write_text(json.dumps({k: str(v) for k, v in files.items()}))
        print(
            f"generated {args.rows:,} rows per format in {time.perf_counter() - t0:.1f}s under {work}"
        )
    print(
        f"\nnormalise only (read + map + check + record ids + JSON payloads), one core, {args.rows:,} rows, "
        f"median of {args.repeat}\n(rows/s over the whole process, start-up included; in process; per CPU-second; "
        "[to checked FOCUS columns only]):",
        flush=True,
    )
    results = {}
    for label, path in files.items() if not args.skip_normalise else []:
        runs = [normalise_only(path) for _ in range(args.repeat)]
        r = median_run(runs, "process_seconds")
        results[label] = r
        focus_only = r["rows"] / max(r["cpu_seconds"] - r["records_cpu_seconds"], 1e-9)
        print(
            f"  {label:22s} {r['rows'] / r['process_seconds']:>9,.0f} rows/s ({r['rows'] / r['seconds']:>9,.0f} in process, "
            f"{r['rows'] / r['process_cpu_seconds']:>9,.0f} per CPU-s)   {r['process_seconds']:5.1f}s   "
            f"peak RSS {r['peak_rss_mb']:5.0f} MB   rejected {r['rejected']}   native {r['native']}   "
            f"file {path.stat().st_size / 1e6:,.0f} MB   [{focus_only:,.0f} per CPU-s]",
            flush=True,
        )
    if args.focus_converters:
        print(
            f"\nfocus_converters 1.0.0 on the same files (whole process, median of {args.repeat}), and FinFocus on one "
            "core against it:"
        )
        facts = {}
        for label, provider in (("aws-cur legacy CSV", "aws-cur"), ("aws-cur 2.0 Parquet", "aws")):
            out = work / f"fc-{provider}"
            out.mkdir(exist_ok=True)
            mine = results.get(label)
            for pinned in (False, True):
                runs = [
                    focus_converters(
                        args.focus_converters, provider, files[label], out, pinned=pinned
                    )
                    for _ in range(args.repeat)
                ]
                r = median_run(runs, "seconds")
                fc, fc_cpu = args.rows / r["seconds"], args.rows / max(r["cpu_seconds"], 1e-9)
                where = "one core (as FinFocus)" if pinned else "all cores (its default)"
                ratio = ""
                if mine:
                    wall = mine["rows"] / mine["process_seconds"] / fc
                    cpu = mine["rows"] / mine["process_cpu_seconds"] / fc_cpu
                    ratio = f"   FinFocus/focus_converters = {wall:.2f}x wall, {cpu:.2f}x per CPU-s"
                print(
                    f"  {label:22s} {where:24s} {fc:>9,.0f} rows/s ({fc_cpu:>9,.0f} per CPU-s)   {r['seconds']:5.1f}s   "
                    f"peak RSS {r['peak_rss_mb']:5.0f} MB   ok={r['ok']}{ratio}"
                    + (f"   error: {r['error']}" if r["error"] else ""),
                    flush=True,
                )
                if r["ok"] and not pinned:
                    facts[label] = (converted_facts(out), finfocus_facts(files[label]))
        print(
            "\nsame files, what comes out (FinFocus: the first 50,000 rows' records; focus_converters: its output):"
        )
        for label, (theirs, ours) in facts.items():
            print(
                f"  {label:22s} CommitmentDiscountId filled: FinFocus {ours['commitment_ids']:,} of {ours['rows']:,} rows "
                f"({ours['arns_in_file']:,} carry an ARN in the file), focus_converters {theirs['commitment_ids']:,} of "
                f"{theirs['rows']:,}"
            )
            print(
                f"  {'':22s} first SubAccountId / BillingAccountId: FinFocus {ours['sub_account']} / {ours['billing_account']}, "
                f"focus_converters {theirs['sub_account']} ({theirs['sub_account_dtype']}) / {theirs['billing_account']}"
            )
        error_behaviour(args.focus_converters, work)
    if not args.skip_e2e:
        print(
            f"\nend to end: {args.rows:,}-row CUR legacy CSV, file -> raw-billing -> pricing -> stored (finfocus ingest --wait):"
        )
        r = end_to_end(files["aws-cur legacy CSV"], args.rows, args.e2e_timeout)
        print(
            f"  {r['rows_per_s']:,.0f} rows/s   {r['seconds']:.1f}s   stored {r['stored_rows']} of {r['rows']}   "
            f"reconciled={r['reconciled']}   ingest peak RSS {r['ingest_peak_rss_mb']:.0f} MB   exit {r['exit_code']}"
        )
        if r["stderr_tail"]:
            print(r["stderr_tail"])


if __name__ == "__main__":
    main()
