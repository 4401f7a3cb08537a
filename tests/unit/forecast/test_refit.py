"""Refit policy: only series whose data changed are fitted again; debounced after imports."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

from services.forecast.config import ForecastSettings
from services.forecast.domain import USAGE, DayCost, SeriesKey, dims_id
from services.forecast.refit import Refitter

D0 = date(2024, 1, 1)


class MemoryStore:
    """In-memory stand-in of ForecastStore for the refit loop."""

    def __init__(self) -> None:
        self.costs: dict[tuple[str, date], Decimal] = {}
        self.saved: dict[str, tuple[str, date]] = {}
        self.fitted_batches: list[list[str]] = []

    def add(self, service: str, day: date, cost: str) -> None:
        self.costs[(service, day)] = self.costs.get((service, day), Decimal(0)) + Decimal(cost)

    async def last_day(self):
        return max((d for _, d in self.costs), default=None)

    async def tag_keys(self):
        return []

    async def day_costs(self, dims, through):
        if dims != ("service",):
            return []
        return [
            DayCost(SeriesKey(dims_id(dims), (("service", s),), "USD"), d, USAGE, c)
            for (s, d), c in self.costs.items()
            if d <= through
        ]

    async def choices(self):
        return {}

    async def save_choices(self, made):
        pass

    async def fingerprints(self):
        return dict(self.saved)

    async def save_forecasts(self, forecasts, projections, *, live_keys, refit=None):
        self.fitted_batches.append(sorted(f.key.group_dict()["service"] for f in forecasts))
        for f in forecasts:
            self.saved[f.key.as_text()] = (f.fingerprint, f.trained_through)
        assert all(len(p) == 1 for p in projections.values())


def settings(**extra) -> ForecastSettings:
    return ForecastSettings(
        kafka_bootstrap="unused:9092",
        database_url="postgresql://unused",
        forecast_executor="inline",
        forecast_horizon=14,
        **extra,
    )


async def test_only_changed_series_are_refitted():
    store = MemoryStore()
    for i in range(20):
        store.add("EC2", D0 + timedelta(days=i), "5")
        store.add("S3", D0 + timedelta(days=i), "1")
    refitter = Refitter(store, settings(), today=lambda: date(2030, 1, 1))
    assert await refitter.refit("first") == 2
    assert await refitter.refit("nothing new") == 0
    store.add("S3", D0 + timedelta(days=19), "0.50")  # a late line of the last day
    assert await refitter.refit("import") == 1
    assert store.fitted_batches[-1] == ["S3"]
    store.add("EC2", D0 + timedelta(days=20), "5")  # a new day moves trained_through for all
    assert await refitter.refit("new day") == 2


async def test_refit_waits_for_a_quiet_period_after_imports():
    store = MemoryStore()
    store.add("EC2", D0, "5")
    refitter = Refitter(
        store, settings(forecast_debounce_seconds=0.2), today=lambda: date(2030, 1, 1)
    )
    await refitter.start()
    try:
        for _ in range(5):  # batches keep arriving: no refit yet
            refitter.poke()
            await asyncio.sleep(0.05)
        assert refitter.refits == 0
        await asyncio.wait_for(refitter.idle.wait(), 3)
        assert refitter.refits == 1
    finally:
        await refitter.stop()


def test_the_fit_worker_exits_when_its_service_is_killed():
    """kill -9 of a forecast instance must not leave its fit worker behind (an orphan holds
    hundreds of MB and waits forever on its call queue)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "from services.forecast.refit import make_executor\n"
            "pool = make_executor('process')\n"
            "print(pool.submit(os.getpid).result(), flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        worker = int(parent.stdout.readline())
        os.kill(worker, 0)  # alive while its parent is
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(worker, signal.SIGKILL)
        raise AssertionError(f"fit worker {worker} outlived its killed parent")
    finally:
        parent.kill()
