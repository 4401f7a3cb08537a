"""`/metrics`, `/healthz` and `/readyz` of one service process, served from its own event loop.

A few dozen lines of HTTP/1.0 on `asyncio.start_server` instead of a web framework: probes and
scrapes are tiny GETs, and answering them on the service's loop is itself the liveness check
(a blocked loop answers nothing). Readiness is decided by `readiness()` (pure) from facts the
runtime gathers with short timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from finfocus import metrics

logger = logging.getLogger(__name__)

#: seconds a readiness answer is reused: probes and scrapes must not hammer the database
READY_CACHE_S = 1.0
#: how long the broker and database checks may take each
CHECK_TIMEOUT_S = 2.0


@dataclass
class Facts:
    """What readiness is decided on; None for a check that does not apply."""

    phase: str = "starting"  # starting, running, stopping
    database: str | None = None  # None: reachable, else why not
    broker: str | None = None
    #: consumer group -> partitions assigned to this process (None: not known yet)
    assigned: dict[str, int | None] = field(default_factory=dict)
    #: "topic[partition] (group)" of every stalled partition
    stalled: list[str] = field(default_factory=list)


def readiness(facts: Facts) -> tuple[bool, list[str]]:
    """(ready, reasons): running, broker and database reachable, every consumer group holding
    partitions, no partition stalled."""
    reasons: list[str] = []
    if facts.phase != "running":
        reasons.append(f"service is {facts.phase}")
    if facts.database:
        reasons.append(f"database unreachable: {facts.database}")
    if facts.broker:
        reasons.append(f"broker unreachable: {facts.broker}")
    for group, count in sorted(facts.assigned.items()):
        if not count:
            reasons.append(f"no partitions assigned to {group}")
    reasons += [f"consumer stalled: {where}" for where in facts.stalled]
    return not reasons, reasons


Check = Callable[[], Awaitable[tuple[bool, list[str]]]]


class ProbeServer:
    """The HTTP port of one service. `check` gathers facts and returns `readiness(...)`."""

    def __init__(
        self, service: str, check: Check, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.service = service
        self.check = check
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self._last: tuple[float, bool, list[str]] | None = None
        self._pending: asyncio.Task | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info(
            "metrics and health on %s", self.url, extra={"fields": {"service": self.service}}
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def ready(self) -> tuple[bool, list[str]]:
        """Readiness, evaluated at most once a second; concurrent callers share one check."""
        if self._last is not None and time.monotonic() - self._last[0] < READY_CACHE_S:
            return self._last[1], self._last[2]
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._evaluate())
        return await asyncio.shield(self._pending)

    async def _evaluate(self) -> tuple[bool, list[str]]:
        try:
            ok, reasons = await self.check()
        except Exception as exc:  # noqa: BLE001 - a failing check is an answer: not ready
            ok, reasons = False, [f"readiness check failed: {type(exc).__name__}"]
        metrics.READY.labels(self.service).set(1 if ok else 0)
        self._last = (time.monotonic(), ok, reasons)
        return ok, reasons

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            for _ in range(100):  # headers: read and ignore
                header = await asyncio.wait_for(reader.readline(), 5)
                if header in (b"\r\n", b"\n", b""):
                    break
            parts = line.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
            status, body, ctype = await self._route(method, path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - a probe must never take the service down
            logger.warning("probe request failed", exc_info=True)
        finally:
            writer.close()

    async def _route(self, method: str, path: str) -> tuple[str, bytes, str]:
        text = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"GET only\n", text
        if path == "/metrics":
            if self._last is None or time.monotonic() - self._last[0] > 5:
                await self.ready()  # keeps finfocus_ready current for scrapers
            body, ctype = metrics.exposition()
            return "200 OK", body, ctype
        if path == "/healthz":
            return "200 OK", b"ok\n", text
        if path == "/readyz":
            ok, reasons = await self.ready()
            if ok:
                return "200 OK", b"ready\n", text
            return "503 Service Unavailable", ("\n".join(reasons) + "\n").encode(), text
        return "404 Not Found", b"/metrics, /healthz, /readyz\n", text
