"""A webhook URL is a credential: after notifies against a failing webhook, no log line and no
row of the remediation or anomaly schemas holds its token (real PostgreSQL, real HTTP)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from finfocus.db import create_pool, migrate_url
from finfocus.secrets import EnvironmentSecrets
from finfocus.telemetry import configure_logging
from schemas.remediation import RemediationCommandV1, RemediationReasonV1, RemediationTargetV1
from services.anomaly.alerts import Subscription
from services.anomaly.app import MIGRATIONS_DIR as ANOMALY_MIGRATIONS
from services.anomaly.notifier import Notifier
from services.remediation import store
from services.remediation.app import MIGRATIONS_DIR as REMEDIATION_MIGRATIONS
from services.remediation.cloud import implementations
from services.remediation.executor import Executor
from services.remediation.guardrails import Policy

pytestmark = pytest.mark.integration
TOKEN = "xq7T0KENs3cr3tB4d9e1"


class Failing(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"internal error")

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_hook():
    server = HTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/{TOKEN}?token={TOKEN}"
    server.shutdown()


@pytest.fixture
def service_log(tmp_path):
    """The services' logging set-up (JSON lines, INFO) writing to a file, as on the stack."""
    root = logging.getLogger()
    saved = (
        root.handlers[:],
        root.level,
        {n: logging.getLogger(n).level for n in ("httpx", "httpcore")},
    )
    path = tmp_path / "remediation.log"
    with path.open("w") as stream:
        configure_logging("remediation", "INFO", stream=stream)
        yield path
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def command(action: str, resource: str, params: dict, *, approval: bool) -> RemediationCommandV1:
    now = datetime.now(UTC)
    return RemediationCommandV1(
        command_id=f"c-{action}-{approval}",
        issued_at=now,
        action=action,
        target=RemediationTargetV1(provider="AWS", resource_id=resource),
        params=params,
        reason=RemediationReasonV1(anomaly_id="anm-1", text="spend doubled"),
        mode="execute",
        requires_approval=approval,
        expires_at=now + timedelta(hours=1),
        playbook="team",
    )


async def test_failing_webhook_leaves_its_token_in_no_log_and_no_table(
    database_url, failing_hook, service_log: Path
):
    await migrate_url(database_url, "remediation", REMEDIATION_MIGRATIONS)
    await migrate_url(database_url, "anomaly", ANOMALY_MIGRATIONS)
    secrets = EnvironmentSecrets(
        {
            "FINFOCUS_SECRET_TEAM_HOOK": failing_hook,
            "FINFOCUS_SECRET_REMEDIATION_APPROVAL_WEBHOOK_URL": failing_hook,
        }
    )
    pool = await create_pool(database_url)
    try:
        notify = command(
            "notify",
            "AWS/111122223333/EC2",
            {"channel": "slack", "webhook_secret": "team-hook"},
            approval=False,
        )
        waiting = command("stop-instance", "i-0abc", {}, approval=True)
        async with store.transaction(pool) as conn:
            await store.insert_command(conn, notify, "approved", actor="planner")
            await store.insert_command(conn, waiting, "pending-approval", actor="planner")
        executor = Executor(
            pool, implementations(secrets), lambda name: Policy(), approval_channel="slack"
        )
        await executor.handle(notify.command_id)
        await executor.handle(waiting.command_id)  # the approval request goes to the same webhook
        async with pool.acquire() as conn:
            failed = await store.get_command(conn, notify.command_id)
        assert failed["status"] == "failed" and "HTTP 500" in failed["result"]["detail"]

        sub = Subscription(name="ops", webhook_secret="team-hook", format="slack")
        notifier = Notifier(lambda: [sub], secrets)
        anomaly = {
            "anomaly_id": "anm-1",
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
        async with pool.acquire() as conn:
            await notifier.enqueue(conn, [anomaly], datetime.now(UTC))
        assert await notifier.deliver_due(pool) == 0
        # a careless log line naming the URL is redacted too
        logging.getLogger("services.remediation").error("could not post to %s", failing_hook)

        tables = await pool.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('remediation', 'anomaly') AND table_type = 'BASE TABLE'"
        )
        dumped = {}
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            dumped[name] = await pool.fetchval(
                f"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {name} t"
            )
    finally:
        await pool.close()
    for handler in logging.getLogger().handlers:
        handler.flush()
    log = service_log.read_text()  # noqa: ASYNC240 - a test, nothing else on its loop
    assert "could not post to http://127.0.0.1" in log  # the line is there, its credential is not
    assert '"logger": "httpx"' not in log  # per-request INFO lines of the HTTP client are off
    assert TOKEN not in log
    assert dumped['"remediation"."audit_log"'] and dumped['"anomaly"."alert_deliveries"']
    leaking = [name for name, text in dumped.items() if TOKEN in text]
    assert leaking == []
