"""One instance of a service runs its periodic work: the one that holds the service's
session-level advisory lock on a dedicated PostgreSQL connection.

Replicas share a consumer group, so each stores only its share of the rows; but work that
reads every series (forecast's refit, remediation's analysis) would be done in full by each of
them. A session lock elects one leader without a table or a clock: PostgreSQL frees it the
moment the holder's backend ends, and the backend ends when its client socket closes (a crash
or `kill -9` too: the kernel closes the socket), so a follower takes the lock at its next try,
within `retry_s`.

A half-open connection (the host gone, the network cut, no FIN) would keep the lock until
the server notices. The connection therefore asks the server to drop a silent client: TCP
keepalives (probes after 10 s idle, every 5 s, 3 lost: about 25 s), `tcp_user_timeout` for
sends nobody acknowledges, and `idle_session_timeout` (60 s) whatever TCP says; the leader
checks in every `check_s`, so only a client that went away is idle that long. The leader
steps down as soon as one check fails or outlasts 2 x `check_s` (a busy event loop may delay
an answer by seconds), which is before the server can have freed the lock for someone else
(5 + 10 s against 25 s). The periodic work stays idempotent all the same:
leadership saves doing it twice, correctness never rests on it.

Work that shows up at a follower (rows it consumed on its partitions) is forwarded with a
NOTIFY on the service's channel; the leader LISTENs on its lock connection and marks its work
due. A NOTIFY sent while nobody leads is lost, which is why a new leader starts with its work
due (`on_elected`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Callable

import asyncpg
from prometheus_client import Gauge

logger = logging.getLogger(__name__)

LEADER = Gauge(
    "finfocus_periodic_leader",
    "1 on the instance that runs the service's periodic work (it holds the service's lock)",
    ["service"],
)

#: the server drops a client it has not heard from: keepalive probes and unacknowledged sends
SERVER_SETTINGS = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "25000",
}
IDLE_SESSION_TIMEOUT_MS = 60_000  # PostgreSQL 14 and later

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def lock_key(service: str) -> int:
    """A bigint advisory-lock key of the service's own, stable across versions and hosts."""
    digest = hashlib.sha256(f"finfocus-periodic:{service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def instance_id() -> str:
    """Which process this is, as recorded next to the work it did."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leader:
    """Elects one instance of `service` among all that run one; `start()` to `stop()`.

    `on_elected()` runs when this instance becomes the leader, `on_nudge()` when a follower
    forwarded work to it; both are plain callbacks on the event loop (mark work due, return).
    """

    def __init__(
        self,
        service: str,
        url: str | Callable[[], str],
        *,
        on_elected: Callable[[], None] | None = None,
        on_nudge: Callable[[], None] | None = None,
        retry_s: float = 2.0,
        check_s: float = 5.0,
        instance: str | None = None,
    ) -> None:
        self.service = service
        self._url = url
        self.on_elected = on_elected
        self.on_nudge = on_nudge
        self.retry_s = retry_s
        self.check_s = check_s
        self.instance = instance or instance_id()
        self.key = lock_key(service)
        self.channel = f"finfocus_periodic_{service}"
        self.elections = 0
        self._leading = False
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._forward = False

    @property
    def leading(self) -> bool:
        return self._leading

    def nudge(self) -> None:
        """Work for the leader showed up here: a follower forwards it (NOTIFY); on the leader
        itself this does nothing, its caller marks the work due."""
        if not self._leading:
            self._forward = True
            self._wake.set()

    async def start(self) -> None:
        """The first try runs now: a lone instance leads before its periodic tasks start."""
        LEADER.labels(self.service).set(0)
        await self._round()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"{self.service}-leader")

    async def stop(self) -> None:
        """Hands the lock on at once (the session ends) instead of when a check would fail."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        conn, self._conn = self._conn, None
        self._step_down("stopping", quiet=True)
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=self.check_s)
            except (*_ERRORS, asyncio.CancelledError):
                conn.terminate()
        with contextlib.suppress(KeyError):
            LEADER.remove(self.service)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.check_s if self._leading else self.retry_s
                )
            self._wake.clear()
            await self._round()

    async def _round(self) -> None:
        try:
            conn = await self._connection()
            if self._leading:
                # the session is alive, so the lock is still ours
                await conn.fetchval("SELECT 1", timeout=2 * self.check_s)
            elif await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", self.key, timeout=2 * self.check_s
            ):
                self._elected()
            if self._forward and not self._leading:
                self._forward = False
                await conn.fetchval(
                    "SELECT pg_notify($1, $2)",
                    self.channel,
                    self.instance,
                    timeout=2 * self.check_s,
                )
            elif self._leading:
                self._forward = False
        except _ERRORS as exc:
            self._drop(f"{type(exc).__name__}: {exc}")

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if self._leading:  # the session that held the lock is gone
            self._step_down("its connection closed")
        url = self._url() if callable(self._url) else self._url
        conn = await asyncpg.connect(
            url,
            timeout=self.check_s,
            server_settings={
                **SERVER_SETTINGS,
                "application_name": f"finfocus-{self.service}-leader",
            },
        )
        try:
            version = conn.get_server_version()
            if (version.major, version.minor) >= (14, 0):
                await conn.execute(f"SET idle_session_timeout = {IDLE_SESSION_TIMEOUT_MS}")
            await conn.add_listener(self.channel, self._heard)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._closed)
        self._conn = conn
        return conn

    def _heard(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        if self._leading and self.on_nudge is not None:
            self.on_nudge()

    def _closed(self, conn: object) -> None:
        if conn is self._conn:
            self._step_down("its connection closed")

    def _elected(self) -> None:
        self._leading = True
        self.elections += 1
        LEADER.labels(self.service).set(1)
        logger.info(
            "periodic work leader: this instance",
            extra={"fields": {"service": self.service, "instance": self.instance}},
        )
        if self.on_elected is not None:
            self.on_elected()

    def _step_down(self, reason: str, *, quiet: bool = False) -> None:
        if not self._leading:
            return
        self._leading = False
        LEADER.labels(self.service).set(0)
        (logger.info if quiet else logger.warning)(
            "periodic work leader: no longer this instance",
            extra={
                "fields": {"service": self.service, "instance": self.instance, "reason": reason}
            },
        )

    def _drop(self, reason: str) -> None:
        """A failed or hung round: whatever the connection's state, it holds nothing we rely
        on any more; the next round connects afresh and tries the lock again."""
        self._step_down(reason)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        logger.debug("leader connection dropped: %s", reason)
