"""Monitors through the api, on the real broker and database: an admin's change travels as a
signed MonitorCommand v1, the anomaly service applies and audits it with the admin as the
actor, a refusal comes back as 422 with the service's reason; lesser roles get 403."""

from __future__ import annotations

import pytest

from services.anomaly.app import build_app as build_anomaly
from tests.integration.api_helpers import bearer, make_token, running_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def anomaly(settings):
    app = build_anomaly(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_an_admin_changes_monitors_through_the_anomaly_service(settings, anomaly):
    async with running_api(settings, api_decision_wait_s=20) as (app, client):
        viewer, approver, admin = [
            await make_token(app, r) for r in ("viewer", "approver", "admin")
        ]
        listed = await client.get("/api/v1/monitors", headers=bearer(viewer))
        assert listed.status_code == 200
        assert [m["name"] for m in listed.json()["monitors"]] == ["services"]  # the default
        body = {"dimensions": ["RegionId"], "top": 5, "params": {"threshold": 4.5}}
        for token in (viewer, approver):
            denied = await client.put("/api/v1/monitors/regions", json=body, headers=bearer(token))
            assert denied.status_code == 403
        put = await client.put("/api/v1/monitors/regions", json=body, headers=bearer(admin))
        assert put.status_code == 200, put.text
        assert put.json()["status"] == "applied" and put.json()["outcome"] == "applied"
        monitor = put.json()["monitor"]
        assert monitor["dimensions"] == ["RegionId"] and monitor["top"] == 5
        admin_id = (await client.get("/api/v1/session", headers=bearer(admin))).json()["name"]
        assert monitor["updated_by"] == f"api:token:{admin_id}"
        one = await client.get("/api/v1/monitors/regions", headers=bearer(viewer))
        assert one.status_code == 200 and one.json()["version"] == 1

        again = await client.put("/api/v1/monitors/regions", json=body, headers=bearer(admin))
        assert again.json()["outcome"] == "unchanged"
        bad = await client.put(
            "/api/v1/monitors/bad",
            json={"dimensions": ["RegionId"], "detector": "no-such-detector"},
            headers=bearer(admin),
        )
        assert bad.status_code == 422 and "no-such-detector" in bad.text
        assert (
            await client.put("/api/v1/monitors/empty", json={}, headers=bearer(admin))
        ).status_code == 422
        assert (
            await client.delete("/api/v1/monitors/nope", headers=bearer(admin))
        ).status_code == 404
        assert (
            await client.delete("/api/v1/monitors/regions", headers=bearer(approver))
        ).status_code == 403
        removed = await client.delete("/api/v1/monitors/regions", headers=bearer(admin))
        assert removed.status_code == 200 and removed.json()["monitor"] is None
        last = await client.delete("/api/v1/monitors/services", headers=bearer(admin))
        assert last.status_code == 422 and "last monitor" in last.text

        audit = (await client.get("/api/v1/monitors/audit", headers=bearer(viewer))).json()["audit"]
        outcomes = [(a["name"], a["action"], a["outcome"], a["actor"]) for a in reversed(audit)]
        who = f"api:token:{admin_id}"
        assert outcomes == [
            ("services", "set", "applied", "file"),
            ("regions", "set", "applied", who),
            ("regions", "set", "unchanged", who),
            ("bad", "set", "refused", who),
            ("regions", "remove", "applied", who),
            ("services", "remove", "refused", who),
        ]
