"""Playbooks through the api, on the real broker and database: viewers list what remediation
loaded; an admin's switch travels as a signed PlaybookCommand v1, remediation applies it and
audits the admin; an unknown playbook is a 422 with remediation's reason; lesser roles 403."""

from __future__ import annotations

import pytest

from finfocus.service import ServiceRuntime
from services.remediation.app import MIGRATIONS_DIR
from services.remediation.config import RemediationSettings
from services.remediation.playbook_commands import register_playbook_commands, switches_for
from services.remediation.playbooks import install_defaults
from tests.integration.api_helpers import bearer, make_token, running_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def remediation(settings):
    """Remediation's playbook-command consumer alone, with the packaged playbooks."""
    rsettings = RemediationSettings.extending(settings)
    install_defaults(rsettings.playbooks_dir)
    runtime = ServiceRuntime("remediation", rsettings)
    switches = switches_for(rsettings)
    register_playbook_commands(runtime, switches)
    app = runtime.app(MIGRATIONS_DIR)
    await app.start()
    await switches.refresh(runtime.pool)
    try:
        yield runtime
    finally:
        await app.stop()


async def test_an_admin_switches_a_playbook_through_remediation(settings, remediation):
    async with running_api(settings, api_decision_wait_s=20) as (app, client):
        viewer, approver, admin = [
            await make_token(app, r) for r in ("viewer", "approver", "admin")
        ]
        listed = await client.get("/api/v1/playbooks", headers=bearer(viewer))
        assert listed.status_code == 200
        playbooks = {p["name"]: p for p in listed.json()["playbooks"]}
        target = playbooks["stop-spiking-instances"]
        assert target["switched"] is False and target["actions"]
        action = "disable" if target["enabled"] else "enable"
        url = f"/api/v1/playbooks/stop-spiking-instances/{action}"
        for token in (viewer, approver):
            assert (await client.post(url, json={}, headers=bearer(token))).status_code == 403
        answer = await client.post(url, json={"reason": "freeze"}, headers=bearer(admin))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        admin_id = (await client.get("/api/v1/session", headers=bearer(admin))).json()["name"]
        assert body["outcome"] == "applied"
        assert body["playbook"]["enabled"] is (not target["enabled"])
        assert body["playbook"]["updated_by"] == f"api:token:{admin_id}"
        again = await client.post(url, headers=bearer(admin))
        assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
        unknown = await client.post("/api/v1/playbooks/nope/enable", headers=bearer(admin))
        assert unknown.status_code == 422 and "no playbook nope" in unknown.text
        audit = (await client.get("/api/v1/playbooks/audit", headers=bearer(viewer))).json()
        assert [(a["name"], a["outcome"], a["actor"], a["reason"]) for a in audit["audit"]] == [
            ("nope", "refused", f"api:token:{admin_id}", None),
            ("stop-spiking-instances", "unchanged", f"api:token:{admin_id}", None),
            ("stop-spiking-instances", "applied", f"api:token:{admin_id}", "freeze"),
        ]


async def test_an_admin_switches_a_playbook_from_the_remote_cli(settings, remediation, tmp_path):
    import json

    from tests.integration.test_cli_remote import _token, finfocus, serving

    home = tmp_path / "client"
    async with serving(settings, api_decision_wait_s=20) as (app, url):
        admin_id, admin = await _token(app, "admin", "remote-admin")
        _, viewer = await _token(app, "viewer", "remote-viewer")
        code, out, err = await finfocus(home, url, viewer, "playbooks", "list", "--output", "json")
        assert code == 0, err
        listed = {p["name"]: p for p in json.loads(out)["playbooks"]}
        target = listed["release-idle-addresses"]
        action = "disable" if target["enabled"] else "enable"
        code, _, err = await finfocus(
            home, url, viewer, "playbooks", action, "release-idle-addresses"
        )
        assert code == 1 and "403" in err
        code, out, err = await finfocus(
            home, url, admin, "playbooks", action, "release-idle-addresses", "--reason", "audit"
        )
        assert code == 0 and f"release-idle-addresses {action}d" in out, err
        code, out, _ = await finfocus(home, url, viewer, "playbooks", "list", "--output", "json")
        after = {p["name"]: p for p in json.loads(out)["playbooks"]}
        assert after["release-idle-addresses"]["enabled"] is (not target["enabled"])
        assert after["release-idle-addresses"]["switched"] is True
        async with remediation.pool.acquire() as conn:
            actor = await conn.fetchval(
                "SELECT actor FROM remediation.v_playbook_audit WHERE outcome = 'applied'"
            )
        assert actor == f"api:token:{admin_id}"
        code, _, err = await finfocus(home, url, admin, "playbooks", "enable", "nope")
        assert code != 0 and "no playbook nope" in err
