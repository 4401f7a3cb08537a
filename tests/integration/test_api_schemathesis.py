"""Property-based tests of every operation in the OpenAPI document (schemathesis) against the
api on a small seeded database and the real broker: no server errors, answers conform to the
document. Kept to a few examples per operation so the whole run stays well under a minute."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from finfocus.db import connect, migrate_url
from services.api import store
from services.api.app import build_app
from services.api.config import ApiSettings
from services.api.routes.assistant import _engine
from services.api.security import new_token, token_hash
from tests.integration.api_seed import seed_cost_lines

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 8


class Server(threading.Thread):
    """uvicorn on a free port in its own thread and loop (schemathesis calls are blocking)."""

    def __init__(self, app) -> None:
        super().__init__(daemon=True)
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
            )
        )

    def run(self) -> None:
        self.server.run()

    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


async def test_schemathesis_finds_no_server_error_in_any_operation(settings):
    await seed_cost_lines(settings.database_url, days=10)
    for service in ("ingest", "anomaly", "forecast", "remediation"):
        await migrate_url(
            settings.database_url, service, ROOT / "services" / service / "migrations"
        )
    app = build_app(ApiSettings(**{**settings.model_dump(), "api_decision_wait_s": 0}))
    server = Server(app)
    server.start()
    for _ in range(200):
        if server.server.started:
            break
        await asyncio.sleep(0.05)
    base = server.url()
    token_id, token = new_token()
    conn = await connect(settings.database_url)
    try:
        await store.create_token(conn, token_id, token_hash(token), "admin", "schemathesis")
    finally:
        await conn.close()
    try:
        schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        if _engine() is None:  # no assistant in this tree: its 503 is the documented answer
            operations = [op for op in operations if op.path != "/api/v1/ai/query"]
        assert len(operations) >= 20

        def exercise(operation) -> None:
            @hypothesis.given(case=operation.as_strategy())
            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            def check(case) -> None:
                response = case.call(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
                )
                case.validate_response(
                    response,
                    checks=[
                        not_a_server_error,
                        status_code_conformance,
                        response_schema_conformance,
                    ],
                )

            try:
                check()
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
                failures.append(f"{operation.label}: {exc}")

        for operation in operations:
            await asyncio.to_thread(exercise, operation)
        assert not failures, "\n\n".join(failures)
    finally:
        server.server.should_exit = True
        await asyncio.to_thread(server.join, 10)
