"""Time to first meaningful paint of the web console's overview and cost explorer, in Chromium,
with N stored cost lines.

    python bench/console.py --lines 1000000 [--home DIR] [--runs 5] [--keep]

Starts an embedded stack in DIR (`finfocus up --detach`; a temporary home by default, stopped
at the end unless --keep), seeds N cost lines into pricing's store with COPY (spread over the
last 60 days: 3 providers, 40 accounts, 12 services, tags on two lines in three), creates a
login, and opens `/` (month to date), `/costs` (month to date by day and service) and the
explorer over the last 30 days by day and service in
Debian's Chromium through Playwright. The pages render their totals on the server, so the
first contentful paint is the paint that shows them; for each page it prints the server's
response time, the first contentful paint and the moment the data-testid total is in the
document, as median and worst of --runs runs after one warm-up. Target: under 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FINFOCUS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PREFIX = "bench-console-"
PASSWORD = "bench-console-pass"


def finfocus(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
    env["FINFOCUS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def lines(n: int, seed: int = 7):
    """Cost line tuples in the column order of COPY below."""
    rng = random.Random(seed)
    providers = ["AWS", "Microsoft", "Google Cloud"]
    services = [f"Service {i:02d}" for i in range(12)]
    regions = ["us-east-1", "eu-west-1", "ap-south-1", "westeurope"]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=60)
    hours = int((now - start).total_seconds() // 3600)
    tag_sets = [
        json.dumps({"team": t, "env": e})
        for t in ("web", "data", "orders")
        for e in ("prod", "dev")
    ]
    for i in range(n):
        at = start + timedelta(hours=rng.randrange(hours))
        cost = Decimal(rng.randint(1, 500_000)) / 10_000
        provider = providers[i % 3]
        yield (
            f"{PREFIX}{i}",
            provider,
            f"ba-{i % 3}",
            f"acct-{i % 40:02d}",
            services[i % 12],
            "Compute",
            regions[i % 4],
            f"r-{i % 5000}",
            "vm",
            "sku-1",
            "Usage",
            at,
            at + timedelta(hours=1),
            "USD",
            cost,
            cost,
            cost,
            cost,
            tag_sets[i % 6] if i % 3 else "{}",
            "billed",
            at,
            "{}",
        )


COLUMNS = (
    "record_id",
    "provider",
    "billing_account_id",
    "sub_account_id",
    "service_name",
    "service_category",
    "region_id",
    "resource_id",
    "resource_type",
    "sku_id",
    "charge_category",
    "charge_period_start",
    "charge_period_end",
    "billing_currency",
    "billed_cost",
    "effective_cost",
    "list_cost",
    "contracted_cost",
    "tags",
    "price_source",
    "priced_at",
    "record",
)


def owner_url(home: Path, url: str) -> str:
    """The embedded cluster's superuser URL with its password (kept 0600 under the home;
    `status` prints URLs without it)."""
    from finfocus.embedded.cluster import admin_password_file

    password = admin_password_file(home).read_text().strip()
    return url.replace("postgres@", f"postgres:{password}@", 1)


async def seed(database_url: str, n: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        have = await conn.fetchval(
            "SELECT count(*) FROM pricing.cost_lines WHERE record_id LIKE $1", PREFIX + "%"
        )
        if have >= n:
            return 0.0
        started = time.monotonic()
        await conn.execute("DELETE FROM pricing.cost_lines WHERE record_id LIKE $1", PREFIX + "%")
        batch: list[tuple] = []
        for row in lines(n):
            batch.append(row)
            if len(batch) >= 100_000:
                await conn.copy_records_to_table(
                    "cost_lines", schema_name="pricing", records=batch, columns=COLUMNS
                )
                batch = []
        if batch:
            await conn.copy_records_to_table(
                "cost_lines", schema_name="pricing", records=batch, columns=COLUMNS
            )
        await conn.execute("ANALYZE pricing.cost_lines")
        return time.monotonic() - started
    finally:
        await conn.close()


TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
  return {response: nav.responseStart, fcp: fcp ? fcp.startTime : null, total: window.__totalAt || null};
}"""
# records when the total is in the document (parsed from the server's HTML, before any script)
OBSERVE = """new MutationObserver((_, o) => {
  if (document.querySelector('[data-testid$="-total"]')) { window.__totalAt = performance.now(); o.disconnect(); }
}).observe(document, {childList: true, subtree: true});"""


def measure(url: str, runs: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    last30 = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    pages = {
        "overview": "/",
        "explorer": "/costs",
        "explorer-30d": f"/costs?from={last30}&group_by=daily,service",
    }
    out: dict[str, dict[str, list[float]]] = {
        name: {"response": [], "fcp": [], "total": []} for name in pages
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(OBSERVE)
        page = context.new_page()
        page.goto(f"{url}/login")
        page.fill("input[name=username]", "bench-console")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/")
        for name, path in pages.items():
            for i in range(runs + 1):
                page.goto(url + path, wait_until="load")
                page.wait_for_selector('[data-testid$="-total"]')
                t = page.evaluate(TIMING)
                if i == 0:
                    continue  # the warm-up
                for key in ("response", "fcp", "total"):
                    if t[key] is not None:
                        out[name][key].append(t[key] / 1000)
        # what the heaviest page added up: its line count proves the seeded lines are in it
        page.goto(url + pages["explorer-30d"])
        print(
            "explorer-30d shows",
            page.get_by_test_id("costs-total").inner_text(),
            "from",
            page.locator("[data-testid=costs-total] + .sub").inner_text(),
        )
        browser.close()
    return {
        name: {
            k: v
            for key, values in series.items()
            if values
            for k, v in ((f"{key}_median", statistics.median(values)), (f"{key}_max", max(values)))
        }
        for name, series in out.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        print(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        return 2
    base = None
    home = args.home
    if home is None:
        base = Path(tempfile.mkdtemp(prefix="finfocus-bench-console-"))
        home = base / "home"
    try:
        up = finfocus(home, "up", "--detach", "--timeout", "240")
        if up.returncode != 0:
            print(up.stdout + up.stderr)
            return 1
        status = json.loads(finfocus(home, "status", "--output", "json").stdout)
        seconds = asyncio.run(seed(owner_url(home, status["database_url"]), args.lines))
        print(
            f"{args.lines} cost lines stored"
            + (f" (COPY in {seconds:.1f}s)" if seconds else " (already there)")
        )
        added = finfocus(
            home,
            "user",
            "add",
            "bench-console",
            "--role",
            "viewer",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        if added.returncode != 0:
            print(added.stderr)
            return 1
        results = measure(status["api_url"].rstrip("/"), args.runs)
        print(
            f"Chromium, 1280x800, {args.runs} runs after a warm-up, seconds from navigation start:"
        )
        print(
            f"{'page':<13} {'response':>10} {'first paint':>12} {'total shown':>12} {'worst total':>12}"
        )
        worst = 0.0
        for name, r in results.items():
            print(
                f"{name:<13} {r.get('response_median', 0):>10.3f} {r.get('fcp_median', 0):>12.3f} "
                f"{r.get('total_median', 0):>12.3f} {r.get('total_max', 0):>12.3f}"
            )
            worst = max(worst, r.get("total_median", 0))
        print(
            f"target < 1.5 s: {'met' if worst < 1.5 else 'NOT met'} (median time the total is shown)"
        )
        return 0
    finally:
        if not args.keep:
            finfocus(home, "down", timeout=120)
            if base is not None:
                shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
