"""Alert delivery: an outbox in `anomaly.alert_deliveries`, drained by a worker that posts to
Slack/Teams-style webhooks (URLs from the secrets provider) with exponential-backoff retries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from finfocus.secrets import SecretsProvider
from finfocus.telemetry import log_fields
from services.anomaly.alerts import Subscription, backoff, load_subscriptions, render

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

ENQUEUE = """
INSERT INTO anomaly.alert_deliveries (subscription, anomaly_id, severity, mode, anomaly, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING
"""
DUE = """
SELECT subscription, anomaly_id, severity, mode, anomaly, attempts FROM anomaly.alert_deliveries
WHERE status = 'pending' AND next_attempt_at <= $1
ORDER BY next_attempt_at LIMIT 200 FOR UPDATE SKIP LOCKED
"""
SENT = """
UPDATE anomaly.alert_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $4, last_error = NULL
WHERE subscription = $1 AND anomaly_id = $2 AND severity = $3
"""
RETRY = """
UPDATE anomaly.alert_deliveries SET status = $4, attempts = attempts + 1, last_error = $5, next_attempt_at = $6
WHERE subscription = $1 AND anomaly_id = $2 AND severity = $3
"""


class SubscriptionSource:
    """The current subscriptions, re-read when the file changes; a broken edit keeps the last good set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None
        self._subs: list[Subscription] = []

    def current(self) -> list[Subscription]:
        stamp = self.path.stat().st_mtime if self.path.exists() else None
        if stamp != self._stamp:
            try:
                self._subs = load_subscriptions(self.path)
            except Exception as exc:  # noqa: BLE001 - any reason the file is invalid keeps the previous subscriptions
                logger.error("subscriptions file rejected, keeping the previous ones: %s", exc)
            self._stamp = stamp
        return self._subs


class Notifier:
    def __init__(
        self,
        subscriptions: Callable[[], Sequence[Subscription]],
        secrets: SecretsProvider,
        *,
        poll_s: float = 5.0,
        retry_base_s: float = 30.0,
        max_attempts: int = 6,
        timeout_s: float = 10.0,
    ) -> None:
        self.subscriptions = subscriptions
        self.secrets = secrets
        self.poll_s = poll_s
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    async def enqueue(self, conn, anomalies: Sequence[dict], now: datetime) -> int:
        """Record the deliveries the subscriptions want (inside the caller's transaction)."""
        rows = [
            (
                s.name,
                a["anomaly_id"],
                a["severity"],
                "immediate" if s.frequency == "immediate" else "digest",
                a,
                s.due_at(now),
            )
            for s in self.subscriptions()
            for a in anomalies
            if s.wants(a)
        ]
        if rows:
            await conn.executemany(ENQUEUE, rows)
            self._wake.set()
        return len(rows)

    async def deliver_due(self, pool, now: datetime | None = None) -> int:
        """Send every due delivery once; returns how many messages were posted successfully."""
        subs = {s.name: s for s in self.subscriptions()}
        sent = 0
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(DUE, now or datetime.now(UTC))
            groups: dict[tuple[str, str], list] = {}
            for r in rows:
                key = (
                    r["subscription"],
                    r["anomaly_id"] if r["mode"] == "immediate" else "*digest*",
                )
                groups.setdefault(key, []).append(r)
            if not groups:  # nothing due: no HTTP client (nor httpx, imported on first use)
                return 0
            import httpx

            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                for (name, _), group in groups.items():
                    error = await self._post(client, subs.get(name), [r["anomaly"] for r in group])
                    at = datetime.now(UTC)
                    for r in group:
                        if error is None:
                            await conn.execute(
                                SENT, r["subscription"], r["anomaly_id"], r["severity"], at
                            )
                        else:
                            attempts = r["attempts"] + 1
                            final = attempts >= self.max_attempts or error.startswith("permanent:")
                            await conn.execute(
                                RETRY,
                                r["subscription"],
                                r["anomaly_id"],
                                r["severity"],
                                "failed" if final else "pending",
                                error[:500],
                                at + backoff(attempts, self.retry_base_s),
                            )
                    if error is None:
                        sent += 1
                    else:
                        logger.warning(
                            "alert delivery failed",
                            extra=log_fields(subscription=name, error=error[:200]),
                        )
        return sent

    async def _post(
        self, client: httpx.AsyncClient, sub: Subscription | None, anomalies: list[dict]
    ) -> str | None:
        if sub is None:
            return "permanent: the subscription no longer exists"
        secret = self.secrets.get(sub.webhook_secret)
        if secret is None:
            return f"secret {sub.webhook_secret!r} not found"
        import httpx

        try:
            response = await client.post(secret.reveal(), json=render(sub.format, anomalies))
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"  # never the URL: it is a secret
        if response.status_code < 300:
            return None
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            return f"permanent: HTTP {response.status_code}"
        return f"HTTP {response.status_code}"

    async def run(self, pool) -> None:
        while True:
            try:
                await self.deliver_due(pool)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive a bad moment of the database
                logger.exception("alert worker round failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)

    def start(self, pool) -> None:
        self._task = asyncio.create_task(self.run(pool))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
