"""When and what to refit: debounced after imports, on a schedule, only the series that changed.

Fitting runs in an executor (a worker process by default) so the consumer's event loop never
waits for a model. A refit reads every series, whichever instance stored the rows, so with
several instances only the leader (finfocus/leader.py) refits; the others forward their pokes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, date, datetime
from functools import partial

from finfocus.leader import Leader, instance_id
from services.forecast import engine
from services.forecast.config import ForecastSettings
from services.forecast.domain import (
    DailySeries,
    SeriesForecast,
    assemble,
    build_series,
    dimension_sets,
    hierarchy_children,
    month_bounds,
    project_period,
    reconcile_bottom_up,
    select_tag_keys,
    trained_through,
)

logger = logging.getLogger(__name__)

AfterRefit = Callable[[list[DailySeries], dict[str, SeriesForecast]], Awaitable[None]]


class InlineExecutor(Executor):
    """Runs the work in the calling thread (unit tests)."""

    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import Future

        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
            fut.set_exception(exc)
        return fut


def exit_with_parent(poll_s: float = 1.0) -> None:
    """The fit worker's initializer: exit when the service that started it is gone.

    A ProcessPoolExecutor worker holds both ends of its call queue's pipe, so a parent killed
    with SIGKILL leaves it waiting forever (an orphan of 300 MB was found 90 minutes after a
    bench's forecast instance died); a thread watches the parent id and ends the process when
    it changes (re-parented to init or a subreaper)."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def make_executor(kind: str) -> Executor:
    if kind == "process":
        import multiprocessing

        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=exit_with_parent,
        )
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast-fit")
    return InlineExecutor()


class Refitter:
    """Owns the refit loop of one service instance."""

    def __init__(
        self,
        store,
        settings: ForecastSettings,
        *,
        extra_series: Callable[[date], Awaitable[list[DailySeries]]] | None = None,
        after_refit: AfterRefit | None = None,
        today: Callable[[], date] | None = None,
        leader: Leader | None = None,
    ) -> None:
        self.store = store
        self.leader = leader
        self.instance = leader.instance if leader is not None else instance_id()
        self.settings = settings
        self.extra_series = extra_series
        self.after_refit = after_refit
        self.today = today or (lambda: datetime.now(UTC).date())
        self._dirty = asyncio.Event()
        self._executor: Executor | None = None
        self._tasks: list[asyncio.Task] = []
        self._last_through: date | None = None
        self.refits = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def poke(self) -> None:
        """New data was stored: refit after the debounce period, here or on the leader."""
        if self._follower():
            self.leader.nudge()  # type: ignore[union-attr]
            return
        self.due()

    def due(self) -> None:
        """This instance refits after the debounce period (it leads, or nobody elects)."""
        self._dirty.set()
        self.idle.clear()

    def _follower(self) -> bool:
        return self.leader is not None and not self.leader.leading

    async def start(self) -> None:
        self._executor = make_executor(self.settings.forecast_executor)
        self._tasks = [
            asyncio.create_task(self._debounced(), name="forecast-refit"),
            asyncio.create_task(self._scheduled(), name="forecast-schedule"),
        ]
        if self.leader is None:
            # catch up after a restart (unchanged series are not refitted); under a leader,
            # whoever is elected catches up (Leader.on_elected)
            self.due()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _debounced(self) -> None:
        debounce = self.settings.forecast_debounce_seconds
        while True:
            await self._dirty.wait()
            while True:  # wait for a quiet period: an import arrives in many batches
                self._dirty.clear()
                try:
                    await asyncio.wait_for(self._dirty.wait(), timeout=debounce)
                except TimeoutError:
                    break
            if self._follower():  # leadership moved during the debounce: the leader refits
                self.leader.nudge()  # type: ignore[union-attr]
                self.idle.set()
                continue
            try:
                await self.refit("data changed")
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed refit must not stop the loop
                logger.exception("forecast refit failed")
            if not self._dirty.is_set():
                self.idle.set()

    async def _scheduled(self) -> None:
        """Daily schedule: a new complete day moves trained_through, so every series refits."""
        while True:
            await asyncio.sleep(self.settings.forecast_schedule_seconds)
            if self._follower():
                continue
            last = await self.store.last_day()
            if trained_through(last, self.today()) != self._last_through:
                self.poke()

    async def refit(self, reason: str) -> int:
        """Fit the series whose data changed since their stored forecast; returns how many."""
        started = datetime.now(UTC)
        through = trained_through(await self.store.last_day(), self.today())
        if through is None:
            return 0
        tag_keys = select_tag_keys(
            await self.store.tag_keys(),
            self.settings.forecast_tag_keys,
            self.settings.forecast_max_tag_keys,
        )
        rows = []
        for dims in dimension_sets(tag_keys):
            rows.extend(await self.store.day_costs(dims, through))
        series = build_series(rows, through)
        if self.extra_series is not None:
            series.extend(await self.extra_series(through))
        known = await self.store.fingerprints()
        todo = [s for s in series if known.get(s.key.as_text()) != (s.fingerprint(), through)]
        todo = with_children(series, todo)
        tasks = [(s.key.as_text(), s.usage) for s in todo]
        reuse = self.settings.forecast_reselect_days
        chosen = {
            key: choice
            for key, (choice, selected) in (await self.store.choices()).items()
            if 0 <= (through - selected).days < reuse
        }
        loop = asyncio.get_running_loop()
        raws = await loop.run_in_executor(
            self._executor or make_executor("inline"),
            partial(
                engine.fit_many,
                tasks,
                self.settings.forecast_horizon,
                self.settings.forecast_cv_windows,
                self.settings.forecast_cv_horizon,
                chosen={k: chosen[k] for k, _ in tasks if k in chosen},
            ),
        )
        raws = reconcile_bottom_up([s.key for s in todo], raws)
        forecasts = [assemble(s, raws[s.key.as_text()]) for s in todo]
        made = [
            (f.key.as_text(), f.choice, through)
            for f in forecasts
            if f.choice and f.key.as_text() not in chosen
        ]
        if made:
            await self.store.save_choices(made)
        by_key = {s.key.as_text(): s for s in series}
        period = month_bounds(through + _one_day())
        projections = {
            f.key.as_text(): [project_period(by_key[f.key.as_text()].actual, f, period)]
            for f in forecasts
        }
        await self.store.save_forecasts(
            forecasts,
            projections,
            live_keys=list(by_key),
            refit=(started, len(series), len(forecasts), reason, self.instance),
        )
        self._last_through = through
        self.refits += 1
        logger.info(
            "forecasts refitted",
            extra={
                "fields": {"series": len(series), "fitted": len(forecasts), "through": str(through)}
            },
        )
        if self.after_refit is not None:
            await self.after_refit(series, {f.key.as_text(): f for f in forecasts})
        return len(forecasts)


def with_children(series: list[DailySeries], todo: list[DailySeries]) -> list[DailySeries]:
    """`todo` plus the base series of every aggregate in it, so aggregates can be reconciled
    bottom-up (an aggregate changes whenever one child does, so this adds only siblings)."""
    from services.forecast.domain import HIERARCHY_BASE, dims_id

    base = [s.key for s in series if s.key.dims == dims_id(HIERARCHY_BASE)]
    have = {s.key.as_text() for s in todo}
    need: set[str] = set()
    for s in todo:
        need.update(c.as_text() for c in hierarchy_children(s.key, base) or [])
    return todo + [s for s in series if s.key.as_text() in need - have]


def _one_day():
    from datetime import timedelta

    return timedelta(days=1)
