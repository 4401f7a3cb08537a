"""A sustained run: billed rows published at a steady rate for minutes, and every service's
consumer lag sampled all along, in seconds of input.

    nice -n 10 .venv/bin/python bench/sustained.py [--seconds 600] [--rate auto|ROWS_PER_S]

Starts one embedded stack (`finfocus up --detach`; PostgreSQL: a fresh database on
127.0.0.1:5432, dropped afterwards, or the embedded one with --embedded-postgres). With
`--rate auto` it first measures pricing's maximum rate (`--probe-rows` rows published as fast
as the producer goes, timed until pricing stored them), then publishes at that rate for
`--seconds`. Every 2 s it reads each service's lag on its input topic from the health files the
services write (what `finfocus status` shows): pricing on raw-billing; anomaly, forecast and
remediation on priced-resources. It prints the lag per service (rows, and seconds of input at
the run's rate) at its peak and at the end of publishing, how long each took to drain after,
and whether every copy holds every row once, to the cent.

The goal (issue 19): every service's lag under 10 s of input at the end of a 10-minute run at
pricing's maximum rate. The machine may be shared: the bench prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import (  # noqa: E402 - the stack harness of bench/scale.py
    CENT,
    ScaleStack,
    billed,
    create_database,
    drop_database,
    publish,
    wait_copies,
)

#: the topic each service's lag is read on
INPUTS = {
    "pricing": "raw-billing",
    "anomaly": "priced-resources",
    "forecast": "priced-resources",
    "remediation": "priced-resources",
}
GOAL_SECONDS = 10.0


def lags(stack: ScaleStack) -> dict[str, int | None]:
    """Rows each service has not consumed yet on its input topic (every instance's
    partitions summed); None where no report names that topic yet."""
    found: dict[str, int | None] = dict.fromkeys(INPUTS)
    for name, entry in (stack.state().get("services") or {}).items():
        service = (entry or {}).get("service") or name
        pid = (entry or {}).get("pid")
        if service not in INPUTS or not pid:
            continue
        path = stack.home / "run" / "health" / f"{service}-{pid}.json"
        try:
            report = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        for consumer in report.get("consumers") or []:
            if consumer.get("topic") == INPUTS[service] and consumer.get("lag") is not None:
                found[service] = (found[service] or 0) + int(consumer["lag"])
    return found


async def probe(stack: ScaleStack, rows: int, timeout: float) -> float:
    """Pricing's maximum rate: `rows` published unpaced, rows/s until pricing stored them."""
    import asyncpg

    batch = billed(rows, f"probe-{uuid.uuid4().hex[:6]}", seed=7)
    url, password = stack.connect_args()
    conn = await asyncpg.connect(url, password=password)
    try:
        published = await publish(stack.bootstrap, batch.records)
        reached, _ = await wait_copies(conn, batch, timeout)
        if reached["pricing"] is None:
            raise RuntimeError(f"pricing did not store {rows} probe rows in {timeout:.0f} s")
        return rows / (published + reached["pricing"])
    finally:
        await conn.close()


#: rows are generated and published this many seconds' worth at a time: ten minutes at ten
#: thousand rows a second held at once would take gigabytes of the bench's own memory
CHUNK_SECONDS = 10.0


async def sustained(stack: ScaleStack, rate: float, seconds: float, drain: float) -> dict:
    import asyncpg

    prefix = f"sustained-{uuid.uuid4().hex[:6]}"
    samples: list[tuple[float, dict[str, int | None]]] = []
    started = time.perf_counter()
    last = [0.0]

    def progress(_sent: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0:
            last[0] = now
            samples.append((now - started, lags(stack)))
            print(f"  {now - started:6.0f} s  lag {samples[-1][1]}", flush=True)

    chunks: list[SimpleNamespace] = []  # account, count, total of each published chunk
    remaining = int(rate * seconds)
    while remaining > 0:
        n = min(remaining, int(rate * CHUNK_SECONDS))
        batch = billed(n, f"{prefix}-{len(chunks):04d}", seed=11 + len(chunks))
        await publish(stack.bootstrap, batch.records, rate=rate, progress=progress)
        chunks.append(SimpleNamespace(account=batch.account, count=n, total=batch.total))
        remaining -= n
        del batch
    took = time.perf_counter() - started
    at_end = lags(stack)
    url, password = stack.connect_args()
    conn = await asyncpg.connect(url, password=password)
    reached: dict[str, float | None] = {}
    found: dict[str, tuple[int, int, Decimal]] = {}
    try:
        waited = time.perf_counter()
        for chunk in chunks:  # the last chunk's copies are the last to complete
            left = max(1.0, drain - (time.perf_counter() - waited))
            got, copies_of = await wait_copies(conn, chunk, left)
            for name, (count, distinct, total) in copies_of.items():
                have = found.get(name, (0, 0, Decimal(0)))
                found[name] = (have[0] + count, have[1] + distinct, have[2] + total)
            reached = {
                name: None if at is None else time.perf_counter() - waited
                for name, at in got.items()
            }
    finally:
        await conn.close()
    return {
        "rows": sum(c.count for c in chunks),
        "total": sum((c.total for c in chunks), Decimal(0)),
        "published_s": took,
        "achieved_rate": sum(c.count for c in chunks) / took,
        "samples": samples,
        "at_end": at_end,
        "drained_s": reached,
        "copies": found,
    }


def report(rate: float, out: dict) -> bool:
    print(
        f"\n{out['rows']:,} rows published in {out['published_s']:.0f} s "
        f"({out['achieved_rate']:,.0f} rows/s, asked {rate:,.0f}); load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} cores"
    )
    ok = True
    print(
        f"{'service':12} {'peak lag':>10} {'peak s':>8} {'end lag':>10} {'end s':>8} {'drained':>9}"
    )
    for service in INPUTS:
        peak = max((s.get(service) or 0 for _, s in out["samples"]), default=0)
        end = out["at_end"].get(service) or 0
        drained = out["drained_s"].get(service)
        ok &= end / rate < GOAL_SECONDS
        print(
            f"{service:12} {peak:>10,} {peak / rate:>8.1f} {end:>10,} {end / rate:>8.1f} "
            + (f"{drained:>8.0f}s" if drained is not None else "   never")
        )
    for service, (count, distinct, total) in out["copies"].items():
        exact = count == distinct == out["rows"] and total.quantize(CENT) == Decimal(
            out["total"]
        ).quantize(CENT)
        ok &= exact
        print(
            f"{service:12} copy {count:,} rows, {distinct:,} distinct, {total} ({'ok' if exact else 'WRONG'})"
        )
    print(
        f"every lag under {GOAL_SECONDS:.0f} s of input at the end, every copy exact: {'yes' if ok else 'NO'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", default="auto", help="rows/s, or auto: pricing's maximum")
    parser.add_argument("--probe-rows", type=int, default=30000)
    parser.add_argument("--drain", type=float, default=900.0, help="seconds to wait for the copies")
    parser.add_argument("--embedded-postgres", action="store_true")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="finfocus-sustained-"))
    base.chmod(0o755)
    database = None if args.embedded_postgres else create_database("ff_sustained")
    stack = ScaleStack(base, database)
    ok = False
    # a SIGTERM (timeout, kill) still stops the stack and drops the database below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        stack.up()
        if args.rate == "auto":
            rate = asyncio.run(probe(stack, args.probe_rows, args.drain))
            print(f"pricing's maximum rate (probe of {args.probe_rows:,} rows): {rate:,.0f} rows/s")
        else:
            rate = float(args.rate)
        out = asyncio.run(sustained(stack, rate, args.seconds, args.drain))
        ok = report(rate, out)
    finally:
        stack.down()
        shutil.rmtree(base, ignore_errors=True)
        if database:
            drop_database(database)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
