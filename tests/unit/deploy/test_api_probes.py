"""The api serves /metrics, /healthz and /readyz on its own port, as the compose health check,
the Helm probes and the scrape configurations expect (no socket: the ASGI app in-process)."""

from __future__ import annotations

import httpx

from services.api.app import build_app
from services.api.config import ApiSettings


async def test_the_api_is_alive_not_ready_before_start_and_exposes_metrics(tmp_path):
    app = build_app(ApiSettings(home=tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "starting" in ready.text
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "finfocus_" in metrics.text
