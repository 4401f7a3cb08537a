"""A background reload every few seconds that survives the database going away.

Services keep small tables (monitors, playbook switches) in memory and reload them on a
timer so that a change applied by another replica reaches every instance; a failed reload
keeps the last good copy and says so. Work that must run once across all instances (a refit,
an analysis over every series) is elected instead: finfocus/leader.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

logger = logging.getLogger(__name__)


class Periodic:
    """Run `action()` every `interval_s` in one task, from `start()` until `stop()`."""

    def __init__(
        self, name: str, interval_s: float, action: Callable[[], Awaitable[object]], what: str
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self.action = action
        self.what = what  # finishes "... not reloaded: <error>"
        self._task: asyncio.Task | None = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.action()
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("%s not reloaded: %s", self.what, exc)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
