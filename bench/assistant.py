"""Accuracy and latency of the assistant's offline engine. Prints figures; run with
`python bench/assistant.py [--lines 1000000]`.

The fixed data set (tests/fixtures/assistant/dataset.py, today = 2026-10-15) is seeded into a
fresh database on FINFOCUS_TEST_PG_ADMIN_URL's server (default postgresql://postgres@127.0.0.1:5432),
the questions of tests/fixtures/assistant/questions.yaml are asked through
`services.api.assistant.answer` on a reader-role connection, and each answer is exact when its
rows equal the rows of the question's hand-written SQL. `--lines N` spreads the same daily
costs over about N stored lines (COPY), for latency at scale; the answers stay the same.
Latency is per question, wall clock, with the name vocabulary cached (its cold load is
printed apart: it is read once per five minutes).

After seeding, every day is marked and pricing's daily aggregate rebuilt (the refresh its
background runs, as bench/api.py does); the aggregate's state is printed with the figures.
`--also-lines` then marks every day dirty and asks again, so every question reads the lines:
the engine's figures without the aggregate, on the same data and machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.assistant.dataset import RESOURCES, START, TODAY  # noqa: E402

ADMIN = os.environ.get(
    "FINFOCUS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def aggregate_state(conn) -> str:
    days = await conn.fetchval("SELECT count(DISTINCT day) FROM pricing.daily_costs")
    rows = await conn.fetchval("SELECT count(*) FROM pricing.daily_costs")
    dirty = await conn.fetchval("SELECT count(*) FROM pricing.dirty_days")
    size = await conn.fetchval(
        "SELECT pg_size_pretty(pg_total_relation_size('pricing.daily_costs'))"
    )
    return f"daily aggregate: {days} days, {rows:,} rows ({size}), {dirty} dirty days"


def views_read(outcomes) -> str:
    agg = sum("pricing.v_daily_costs" in (o.sql or "") for o in outcomes)
    lines = sum("pricing.v_cost_lines" in (o.sql or "") for o in outcomes)
    return f"{agg} questions read pricing.v_daily_costs, {lines} read pricing.v_cost_lines"


async def main(lines: int, keep: bool, reuse: str | None, also_lines: bool) -> None:
    import asyncpg

    from finfocus.db import connect
    from services.api.assistant import vocab
    from tests.fixtures.assistant.accuracy import HELD_OUT, evaluate, questions, report
    from tests.fixtures.assistant.dataset import build_aggregate, seed

    base_lines = len(RESOURCES) * (TODAY - START).days
    scale = max(1, math.ceil(lines / base_lines))
    name = f"ff_bench_assistant_{uuid.uuid4().hex[:8]}"
    if reuse:
        url, keep = reuse, True
    else:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        conn = await connect(url)
        started = time.perf_counter()
        if not reuse:
            await seed(conn, scale=scale, aggregate=False)
        stored = await conn.fetchval("SELECT count(*) FROM pricing.cost_lines")
        print(
            f"seeded {stored:,} cost lines in {time.perf_counter() - started:.1f} s (scale {scale})"
            if not reuse
            else f"reusing {stored:,} cost lines"
        )
        started = time.perf_counter()
        rebuilt = await build_aggregate(conn)
        print(f"aggregate refresh: {rebuilt} days rebuilt in {time.perf_counter() - started:.1f} s")
        print(await aggregate_state(conn))
        vocab.forget()
        started = time.perf_counter()
        await vocab.load(conn, key="bench")
        print(f"vocabulary cold load: {(time.perf_counter() - started) * 1000:.0f} ms")
        items = questions()
        await evaluate(conn, items[:3])  # warm the cache and the buffers
        outcomes = await evaluate(conn, items)
        overall, per_category = report(outcomes)
        print(f"\n{'category':<20} {'questions':>9} {'exact':>7}")
        for category, share in per_category.items():
            n = sum(1 for o in outcomes if o.category == category)
            print(f"{category:<20} {n:>9} {share:>6.0%}")
        print(f"{'overall':<20} {len(outcomes):>9} {overall:>6.1%}")
        latencies = sorted(o.seconds * 1000 for o in outcomes)
        p95 = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)]
        print(
            f"\nlatency per question: median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, "
            f"max {latencies[-1]:.0f} ms over {stored:,} lines"
        )
        print(views_read(outcomes))
        held = await evaluate(conn, questions(HELD_OUT))
        print(
            f"held-out wording (heldout.yaml, not used to write the rules): "
            f"{sum(o.exact for o in held)}/{len(held)} exact"
        )
        for o in held:
            if not o.exact:
                print(f"MISS held-out [{o.category}] {o.question!r}: {o.answer}")
        await engine_overhead(conn, items)
        slow = sorted(outcomes, key=lambda o: -o.seconds)[:3]
        print("slowest: " + "; ".join(f"{o.question!r} {o.seconds * 1000:.0f} ms" for o in slow))
        for o in outcomes:
            if not o.exact:
                print(f"MISS [{o.category}] {o.question!r}: {o.answer}")
        if also_lines:
            await conn.execute(
                "INSERT INTO pricing.dirty_days (day) SELECT DISTINCT day FROM pricing.daily_costs "
                "ON CONFLICT DO NOTHING"
            )
            print(f"\nevery day marked dirty: {await aggregate_state(conn)}")
            await evaluate(conn, items[:3])
            dirty = await evaluate(conn, items)
            latencies = sorted(o.seconds * 1000 for o in dirty)
            p95 = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)]
            print(
                f"lines only: {sum(o.exact for o in dirty)}/{len(dirty)} exact; latency median "
                f"{statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms; "
                + views_read(dirty)
            )
            rebuilt = await build_aggregate(conn)
            print(f"aggregate rebuilt again ({rebuilt} days): {await aggregate_state(conn)}")
        await conn.close()
    finally:
        if not keep:
            admin = await asyncpg.connect(ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        else:
            print(f"kept database {url}")


async def engine_overhead(conn, items: list[dict]) -> None:
    """The assistant's own share of a question (reading it, building and checking the SQL),
    apart from PostgreSQL's execution."""
    from services.api.assistant import offline, safety, vocab
    from services.api.assistant.understand import understand

    words = await vocab.load(conn, key="bench")
    spent = []
    for item in items:
        started = time.perf_counter()
        plan = understand(item["q"], words, TODAY)
        safety.check(offline.build_sql(plan, words, TODAY, aggregate=True))
        spent.append((time.perf_counter() - started) * 1000)
    spent.sort()
    print(
        f"engine share (read, build, check): median {statistics.median(spent):.1f} ms, "
        f"p95 {spent[max(0, math.ceil(0.95 * len(spent)) - 1)]:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lines", type=int, default=0, help="store about this many cost lines (e.g. 1000000)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", metavar="URL", help="a database kept by --keep: ask again, no seeding"
    )
    parser.add_argument(
        "--also-lines",
        action="store_true",
        help="then mark every day dirty and ask again (every question reads the lines)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.lines, args.keep, args.reuse, args.also_lines))
