"""Alert subscriptions: webhook delivery with retries, URL from the secrets provider."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from services.anomaly.app import build_app
from services.anomaly.config import AnomalySettings
from tests.integration.test_anomaly_pipeline import history, publish

pytestmark = pytest.mark.integration


class Hook(BaseHTTPRequestHandler):
    calls: list[dict] = []
    fail_first = 1

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.calls.append(body)
        failing = len(Hook.calls) <= Hook.fail_first
        self.send_response(503 if failing else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_url():
    Hook.calls = []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


async def test_anomaly_is_posted_to_the_slack_webhook_after_a_retry(
    settings, hook_url, monkeypatch
):
    monkeypatch.setenv("FINFOCUS_SECRET_OPS_SLACK", hook_url)
    subs = settings.home / "anomaly" / "subscriptions.yaml"
    subs.parent.mkdir(parents=True, exist_ok=True)
    subs.write_text(
        "subscriptions:\n"
        "  - name: ops\n    webhook_secret: ops-slack\n    format: slack\n"
        "    min_impact: 100\n    min_impact_pct: 50\n    combine: and\n"
        "  - name: finance\n    webhook_secret: ops-slack\n    min_impact: 100000\n"  # never reached
    )
    app = build_app(
        AnomalySettings(
            **settings.model_dump(), anomaly_alert_poll_s=0.2, anomaly_alert_retry_base_s=0.2
        )
    )
    await app.start()
    try:
        await publish(settings.kafka, history())
        for _ in range(150):
            if len(Hook.calls) >= 2:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
    finally:
        await app.stop()
    assert len(Hook.calls) == 2  # one 503, one success; the finance threshold is not met
    assert Hook.calls[0] == Hook.calls[1]
    text = Hook.calls[1]["text"]
    assert "FinFocus cost anomaly" in text and "ServiceName=AmazonEC2" in text and "anm-" in text


async def test_daily_digest_sends_one_message_at_the_digest_hour(database_url, hook_url):
    from datetime import UTC, datetime

    from finfocus.db import create_pool, migrate_url
    from finfocus.secrets import EnvironmentSecrets
    from services.anomaly.alerts import Subscription
    from services.anomaly.app import MIGRATIONS_DIR
    from services.anomaly.notifier import Notifier

    Hook.fail_first = 0
    try:
        await migrate_url(database_url, "anomaly", MIGRATIONS_DIR)
        pool = await create_pool(database_url)
        sub = Subscription(
            name="finance",
            webhook_secret="digest",
            format="teams",
            frequency="daily",
            digest_hour=8,
            min_impact=10,
        )
        notifier = Notifier(lambda: [sub], EnvironmentSecrets({"FINFOCUS_SECRET_DIGEST": hook_url}))
        base = {
            "severity": "high",
            "status": "open",
            "monitor": "services",
            "dimension": {"ServiceName": "EC2"},
            "impact": "150.00",
            "impact_pct": "30.00",
            "actual_cost": "650.00",
            "expected_cost": "500.00",
            "currency": "USD",
            "window_start": "2026-03-29T00:00:00Z",
            "window_end": "2026-03-30T00:00:00Z",
        }
        created = datetime(2026, 3, 30, 10, tzinfo=UTC)
        async with pool.acquire() as conn:
            await notifier.enqueue(
                conn,
                [
                    {**base, "anomaly_id": "anm-1"},
                    {**base, "anomaly_id": "anm-2"},
                    {**base, "anomaly_id": "anm-3", "impact": "5.00"},
                ],
                created,
            )
        assert (
            await notifier.deliver_due(pool, now=datetime(2026, 3, 31, 7, tzinfo=UTC)) == 0
        )  # not yet
        assert await notifier.deliver_due(pool, now=datetime(2026, 3, 31, 8, 1, tzinfo=UTC)) == 1
        assert (
            await notifier.deliver_due(pool, now=datetime(2026, 3, 31, 9, tzinfo=UTC)) == 0
        )  # sent once
        statuses = await pool.fetch(
            "SELECT anomaly_id, status FROM anomaly.v_alert_deliveries ORDER BY 1"
        )
        await pool.close()
    finally:
        Hook.fail_first = 1
    assert [tuple(r) for r in statuses] == [
        ("anm-1", "sent"),
        ("anm-2", "sent"),
    ]  # anm-3 below threshold
    [card] = Hook.calls
    assert card["@type"] == "MessageCard" and "2 cost anomalies" in card["title"]
    assert "anm-1" in card["text"] and "anm-2" in card["text"]
